"""Training and evaluation: the paper's recipe on real datasets, multi-GPU with torchrun, resumable.

Uses `model` through its public API only.
"""
