"""The paper's mask transformer decoder.

Learnable class embeddings are appended to the (projected) patch tokens and processed jointly
by a few transformer blocks; masks are the scalar products between L2-normalized patch
embeddings and class embeddings, normalized over classes by a LayerNorm.
Key names match the official `decoder.{proj_dec,cls_emb,blocks,decoder_norm,proj_patch,
proj_classes,mask_norm}`.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from model.config import SegmenterConfig


class MaskTransformer(nn.Module):
    def __init__(self, cfg: SegmenterConfig) -> None:
        super().__init__()
        d_model = cfg.embed_dim  # the official decoder keeps the encoder's width
        self.num_classes = cfg.num_classes
        norm = partial(nn.LayerNorm, eps=cfg.decoder_eps)
        drop_path = torch.linspace(0, cfg.decoder_drop_path_rate, cfg.decoder_depth).tolist()
        self.proj_dec = nn.Linear(cfg.embed_dim, d_model)
        self.cls_emb = nn.Parameter(torch.zeros(1, cfg.num_classes, d_model))
        self.blocks = nn.ModuleList(
            Block(
                dim=d_model,
                num_heads=cfg.decoder_num_heads,
                mlp_ratio=4.0,
                qkv_bias=True,
                proj_drop=cfg.decoder_dropout,
                attn_drop=cfg.decoder_dropout,
                drop_path=drop_path[i],
                norm_layer=norm,
            )
            for i in range(cfg.decoder_depth)
        )
        self.decoder_norm = norm(d_model)
        # Raw d×d matrices (not Linear layers), as in the official checkpoints.
        scale = d_model**-0.5
        self.proj_patch = nn.Parameter(scale * torch.randn(d_model, d_model))
        self.proj_classes = nn.Parameter(scale * torch.randn(d_model, d_model))
        self.mask_norm = norm(cfg.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_emb, std=0.02)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"cls_emb"}

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The tokens the first block sees: projected patch tokens, then the class embeddings:
        B×(h·w+C)×d."""
        return torch.cat([self.proj_dec(tokens), self.cls_emb.expand(tokens.shape[0], -1, -1)], dim=1)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """tokens: B×(h·w)×D patch tokens; grid: (h, w). Returns B×n_cls×h×w mask logits."""
        b, n, _ = tokens.shape
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        x = self.decoder_norm(x)
        patches, classes = x[:, :n], x[:, n:]  # B×(h·w)×d, B×C×d
        patches = F.normalize(patches @ self.proj_patch, dim=-1)
        classes = F.normalize(classes @ self.proj_classes, dim=-1)
        masks = self.mask_norm(patches @ classes.transpose(1, 2))  # B×(h·w)×C
        return masks.transpose(1, 2).reshape(b, self.num_classes, grid[0], grid[1])
