# Hydra imports every module of this package at start-up: keep them cheap.
__version__ = "0.1.0"
