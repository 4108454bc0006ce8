"""Learning-rate schedules: the paper's poly decay and the appendix's warmup + cosine."""

from __future__ import annotations

import math


def poly_lr(iteration: int, total: int, base_lr: float, power: float = 0.9, min_lr: float = 1e-5,
            warmup: int = 0) -> float:
    """(base - min)·(1 - t/T)^power + min, as mmseg's poly policy; linear warmup first if asked."""
    if warmup and iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    progress = min(iteration, total) / total
    return (base_lr - min_lr) * (1 - progress) ** power + min_lr


def cosine_lr(iteration: int, total: int, base_lr: float, min_lr: float = 1e-5, warmup: int = 0) -> float:
    if warmup and iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    progress = min(iteration - warmup, total - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
