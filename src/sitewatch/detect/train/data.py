"""Training data (placeholder constants; see below)."""

WORKING_GSD_M = 0.3
