"""Training and evaluation (issue: training package). Uses `model` through its public API only."""
