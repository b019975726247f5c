# Hydra imports every module of this package at start-up: keep them cheap.
