"""The ViT encoder: timm's VisionTransformer (fused attention) with Segmenter's token handling.

We subclass timm so the blocks, the patch embedding, weight init, gradient checkpointing and the
`.npz` loader are timm's. What we change is the part where Segmenter differs from a classifier:
- any input size: the position embeddings are resized to the input's patch grid on the fly, with
  the interpolation the checkpoint was trained with (official: bilinear, no antialias);
- an optional DeiT distillation token after the CLS token (Seg-B†);
- the output is the normalized *patch* tokens (prefix tokens dropped), ready for a decoder.

State-dict keys equal the official Segmenter encoder's (`patch_embed.proj`, `cls_token`,
`dist_token`, `pos_embed`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}`, `norm`).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from model.config import SegmenterConfig


def resize_pos_embed(
    pos_embed: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix_tokens: int,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Resample the grid part of ViT position embeddings; prefix tokens are kept as they are.

    Args:
        pos_embed: 1×(P+h·w)×D float, P prefix positions followed by the row-major h×w grid.
        old_grid: (h, w) of the stored grid.
        new_grid: (h', w') wanted.
        num_prefix_tokens: P (1 for CLS, 2 for CLS + DIST).
        mode: "bilinear" (official Segmenter) or "bicubic" (mmseg), align_corners=False,
            no antialias (antialias differs from the official numerics and does not export).
    Returns:
        1×(P+h'·w')×D float, same dtype.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    h, w = old_grid
    if grid.shape[1] != h * w:
        raise ValueError(
            f"position embedding has {grid.shape[1]} grid positions, expected {h}×{w}={h * w}"
        )
    dim = grid.shape[-1]
    grid = grid.reshape(1, h, w, dim).permute(0, 3, 1, 2)  # 1×D×h×w
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode=mode, align_corners=False)
    grid = grid.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)
    return torch.cat([prefix, grid], dim=1)


class ViTEncoder(VisionTransformer):
    """ViT over image patches. `forward` returns patch tokens and the patch grid."""

    def __init__(self, cfg: SegmenterConfig) -> None:
        super().__init__(
            img_size=cfg.image_size,
            patch_size=cfg.patch_size,
            num_classes=0,  # no classifier head: Segmenter decodes the patch tokens
            global_pool="",
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=True,
            class_token=True,
            dynamic_img_size=True,  # patch_embed accepts any size and returns B×h×w×D
            # The official ViT applies one dropout rate everywhere: after the position
            # embeddings, on the attention matrix, after the projections and in the MLP.
            pos_drop_rate=cfg.dropout,
            attn_drop_rate=cfg.dropout,
            proj_drop_rate=cfg.dropout,
            drop_path_rate=cfg.drop_path_rate,
            norm_layer=partial(nn.LayerNorm, eps=cfg.layer_norm_eps),
        )
        self.patch_size = cfg.patch_size
        self.pos_embed_interp = cfg.pos_embed_interp
        self.distilled = cfg.distilled
        if cfg.distilled:
            # As DeiT: a second prefix token with its own position embedding.
            self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
            self.num_prefix_tokens += 1
            self.pos_embed = nn.Parameter(
                torch.zeros(1, self.patch_embed.num_patches + self.num_prefix_tokens, cfg.embed_dim)
            )
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        else:
            self.dist_token = None

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "dist_token"}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Encode images whose sides are multiples of the patch size.

        Args:
            images: B×3×H×W float, normalized; H and W multiples of `patch_size`.
        Returns:
            (tokens, (h, w)): tokens B×(h·w)×D float, the final-LayerNorm'd patch tokens in
            row-major grid order (prefix tokens removed); h = H/patch, w = W/patch.
        """
        x, grid = self.embed(images)
        x = self.forward_blocks(x)
        x = self.norm(x)
        return x[:, self.num_prefix_tokens:], grid

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The tokens the first block sees: B×(P+h·w)×D (prefix tokens first, position embeddings
        resized to the image's grid and added), and the grid (h, w)."""
        x = self.patch_embed(images)  # B×h×w×D
        b, h, w, d = x.shape
        x = x.reshape(b, h * w, d)
        prefix = [self.cls_token.expand(b, -1, -1)]
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(b, -1, -1))
        x = torch.cat(prefix + [x], dim=1)  # B×(P+h·w)×D
        pos = resize_pos_embed(
            self.pos_embed, self.patch_embed.grid_size, (h, w), self.num_prefix_tokens,
            mode=self.pos_embed_interp,
        )
        return self.pos_drop(x + pos), (h, w)

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)
