"""An independent re-implementation of the official Segmenter forward pass: the test oracle.

Written from the paper and `shared/notes/segmenter-reference.md`, in plain PyTorch with none of
`model/`'s code or timm: unfused attention (softmax(q·kᵀ/√d)·v materialised, as the authors'
code computes it), LayerNorm eps 1e-5, bilinear position-embedding resize, zero padding to the
patch size, bilinear upsampling. Parameter names equal the official checkpoints' keys, so an
official `checkpoint.pth` state_dict loads into it with `load_state_dict(strict=True)`.

The parity tests load the same official-format checkpoint into this and into `model/` and
compare logits; the throughput benchmark uses it as the "official implementation" baseline.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # B×heads×N×hd
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        attn = attn.softmax(dim=-1)
        if return_attention:  # the authors' Block returns the softmax itself: B×heads×N×N
            return attn
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)  # eps 1e-5, PyTorch default, as the official code
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> torch.Tensor:
        if return_attention:
            return self.attn(self.norm1(x), return_attention=True)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)


class Encoder(nn.Module):
    def __init__(self, image_size: int, patch: int, dim: int, depth: int, heads: int, hidden: int, distilled: bool):
        super().__init__()
        self.patch = patch
        self.grid = image_size // patch
        self.extra = 2 if distilled else 1
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**2 + self.extra, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, im: torch.Tensor, layer_id: int | None = None) -> torch.Tensor:
        """Normalized tokens (prefix included); with `layer_id`, that block's attention instead
        (the authors' `get_attention_map`: blocks before it run, its softmax is returned)."""
        b, _, h, w = im.shape
        x = self.patch_embed.proj(im).flatten(2).transpose(1, 2)
        tokens = [self.cls_token.expand(b, -1, -1)]
        if self.extra == 2:
            tokens.append(self.dist_token.expand(b, -1, -1))
        x = torch.cat(tokens + [x], dim=1)
        pos = self.pos_embed
        gh, gw = h // self.patch, w // self.patch
        if (gh, gw) != (self.grid, self.grid):
            grid = pos[0, self.extra:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(gh, gw), mode="bilinear")
            grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
            pos = torch.cat([pos[:, : self.extra], grid], dim=1)
        x = x + pos
        for i, blk in enumerate(self.blocks):
            if i == layer_id:
                return blk(x, return_attention=True)
            x = blk(x)
        return self.norm(x)


class LinearHead(nn.Module):
    def __init__(self, dim: int, n_cls: int) -> None:
        super().__init__()
        self.head = nn.Linear(dim, n_cls)

    def forward(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        # The authors' rearrange: a B×C×h×w *view* of the B×N×C tensor (channels last in memory).
        # Its strides decide which F.interpolate kernel runs next, so a baseline must keep them.
        return rearrange(self.head(x), "b (h w) c -> b c h w", h=gh)


class MaskHead(nn.Module):
    def __init__(self, dim: int, n_cls: int, n_layers: int) -> None:
        super().__init__()
        self.n_cls = n_cls
        self.proj_dec = nn.Linear(dim, dim)
        self.cls_emb = nn.Parameter(torch.zeros(1, n_cls, dim))
        self.blocks = nn.ModuleList(Block(dim, max(1, dim // 64), 4 * dim) for _ in range(n_layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.proj_patch = nn.Parameter(torch.zeros(dim, dim))
        self.proj_classes = nn.Parameter(torch.zeros(dim, dim))
        self.mask_norm = nn.LayerNorm(n_cls)

    def forward(self, x: torch.Tensor, gh: int, gw: int, layer_id: int | None = None) -> torch.Tensor:
        x = self.proj_dec(x)
        x = torch.cat([x, self.cls_emb.expand(x.shape[0], -1, -1)], dim=1)
        for i, blk in enumerate(self.blocks):
            if i == layer_id:  # the authors' MaskTransformer.get_attention_map: class tokens appended
                return blk(x, return_attention=True)
            x = blk(x)
        x = self.decoder_norm(x)
        patches, cls = x[:, : -self.n_cls] @ self.proj_patch, x[:, -self.n_cls :] @ self.proj_classes
        patches = patches / patches.norm(dim=-1, keepdim=True)
        cls = cls / cls.norm(dim=-1, keepdim=True)
        masks = self.mask_norm(patches @ cls.transpose(1, 2))  # B×N×C
        return rearrange(masks, "b (h w) n -> b n h w", h=gh)  # as the authors: a view, see LinearHead


class OfficialSegmenter(nn.Module):
    """Built from an official variant.yml's `net_kwargs`."""

    def __init__(self, net_kwargs: dict) -> None:
        super().__init__()
        size = net_kwargs["image_size"]
        size = size[0] if isinstance(size, (list, tuple)) else size
        dim, patch = net_kwargs["d_model"], net_kwargs["patch_size"]
        hidden = net_kwargs.get("d_ff", 4 * dim)
        self.patch = patch
        self.encoder = Encoder(size, patch, dim, net_kwargs["n_layers"], net_kwargs["n_heads"], hidden,
                               net_kwargs.get("distilled", False))
        dec = net_kwargs["decoder"]
        n_cls = net_kwargs["n_cls"]
        if dec["name"] == "linear":
            self.decoder = LinearHead(dim, n_cls)
        else:
            self.decoder = MaskHead(dim, n_cls, dec["n_layers"])

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        h, w = im.shape[-2:]
        ph, pw = math.ceil(h / self.patch) * self.patch, math.ceil(w / self.patch) * self.patch
        if (ph, pw) != (h, w):  # as the official `padding()`: no copy when nothing to pad
            im = F.pad(im, (0, pw - w, 0, ph - h), value=0)
        x = self.encoder(im)[:, self.encoder.extra:]
        masks = self.decoder(x, ph // self.patch, pw // self.patch)
        masks = F.interpolate(masks, size=(ph, pw), mode="bilinear")
        return masks[:, :, :h, :w]


def official_attention_map(ref: OfficialSegmenter, im: torch.Tensor, layer_id: int, part: str) -> torch.Tensor:
    """The authors' `get_attention_map_enc` / `_dec` on `im` (whose sides are multiples of the patch):
    B×heads×N×N, N = prefix + patches (encoder) or patches + classes (decoder)."""
    if part == "encoder":
        return ref.encoder(im, layer_id=layer_id)
    x = ref.encoder(im)[:, ref.encoder.extra:]
    return ref.decoder(x, im.shape[-2] // ref.patch, im.shape[-1] // ref.patch, layer_id=layer_id)


def official_state_dict(ref: OfficialSegmenter, n_cls_head: int = 1000) -> dict[str, torch.Tensor]:
    """The state_dict an official checkpoint would hold: ours plus the unused classifier heads."""
    state = dict(ref.state_dict())
    dim = ref.encoder.norm.weight.shape[0]
    state["encoder.head.weight"] = torch.randn(n_cls_head, dim)
    state["encoder.head.bias"] = torch.randn(n_cls_head)
    if ref.encoder.extra == 2:
        state["encoder.head_dist.weight"] = torch.randn(n_cls_head, dim)
        state["encoder.head_dist.bias"] = torch.randn(n_cls_head)
    return state


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter with random values (LayerNorm weights around 1), deterministically."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.2 * noise)
    return module
