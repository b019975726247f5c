"""The bottom layer, used by every other package: errors, timestamps, the environment variables ttlaunch sets."""
