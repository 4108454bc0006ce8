"""The paper's point-wise linear decoder: one Linear(D → n_cls) per patch token."""

from __future__ import annotations

import torch
from torch import nn

from model.config import SegmenterConfig


class LinearDecoder(nn.Module):
    """Patch-level class logits. Key names match the official `decoder.head`."""

    def __init__(self, cfg: SegmenterConfig) -> None:
        super().__init__()
        self.num_classes = cfg.num_classes
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """tokens: B×(h·w)×D patch tokens; grid: (h, w). Returns B×n_cls×h×w logits."""
        b = tokens.shape[0]
        logits = self.head(tokens)  # B×(h·w)×C
        return logits.transpose(1, 2).reshape(b, self.num_classes, grid[0], grid[1])
