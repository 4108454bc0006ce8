"""What the model looks at: the softmax attention of one encoder or decoder layer, as the authors'
`get_attention_map` computes it (the paper's Appendix B), and per-head maps of one token's row.

    maps = attention_maps(net, images, layer=3)                   # encoder, B×heads×N×N
    heads = maps.patch_row(0, x=120, y=64)                        # heads×H×W: where that patch looks
    heads = attention_maps(net, images, 1, "decoder").class_row(0, 12)   # where class 12's token looks

Encoder tokens: prefix (CLS, DIST) then the patches, row-major; decoder tokens: the patches
then one per class. The layers before `layer` run as in the forward pass (position embeddings
resized to the image's grid; the image padded to a multiple of the patch size, as `Segmenter`
does); that layer's q·kᵀ softmax is computed apart, so the normal forward keeps its fused
attention kernel and its speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.inference.cost import TooManyWindows, scaled_size
from model.inference.predictor import Predictor, Scale
from model.inference.resize import resize_uint8
from model.modeling.segmenter import Segmenter
from model.visualization import heatmap_grid

Part = Literal["encoder", "decoder"]


def _softmax_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """softmax(q·kᵀ·scale) of a timm Block on its input x (B×N×D): B×heads×N×N."""
    attn = block.attn
    b, n, d = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.num_heads, d // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])  # B×heads×N×hd (timm's norms: identity here)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


@dataclass(frozen=True)
class AttentionMaps:
    attention: torch.Tensor  # B×heads×N×N float32
    part: Part
    grid: tuple[int, int]  # (h, w) patch grid of the padded image
    patch_size: int
    image_size: tuple[int, int]  # (H, W) before padding
    first_patch: int  # index of the first patch token (prefix tokens come before, in the encoder)

    @property
    def num_heads(self) -> int:
        return self.attention.shape[1]

    def patch_index(self, x: int, y: int) -> int:
        """The token of the patch holding pixel (x, y) of the image."""
        if not (0 <= x < self.image_size[1] and 0 <= y < self.image_size[0]):
            raise ValueError(f"pixel ({x}, {y}) is outside the {self.image_size[1]}×{self.image_size[0]} image")
        return self.first_patch + (y // self.patch_size) * self.grid[1] + x // self.patch_size

    def row_maps(self, index: int, token: int) -> torch.Tensor:
        """heads×h×w: how much `token` attends to each patch (one image of the batch)."""
        h, w = self.grid
        return self.attention[index, :, token, self.first_patch : self.first_patch + h * w].reshape(-1, h, w)

    def to_image(self, maps: torch.Tensor) -> torch.Tensor:
        """heads×h×w patch maps -> heads×H×W, each patch's value over its pixels (the authors'
        nearest upsampling ×patch), the padding cropped off."""
        up = F.interpolate(maps[None], scale_factor=self.patch_size, mode="nearest")[0]
        return up[:, : self.image_size[0], : self.image_size[1]]

    def patch_row(self, index: int, x: int, y: int) -> torch.Tensor:
        """heads×H×W: where the patch at pixel (x, y) attends."""
        return self.to_image(self.row_maps(index, self.patch_index(x, y)))

    def class_row(self, index: int, class_id: int) -> torch.Tensor:
        """heads×H×W: where the decoder's token of `class_id` attends (decoder maps only)."""
        if self.part != "decoder":
            raise ValueError("class tokens exist in the decoder only; use part='decoder'")
        h, w = self.grid
        num_classes = self.attention.shape[-1] - h * w
        if not 0 <= class_id < num_classes:
            raise ValueError(f"class {class_id} is not in 0..{num_classes - 1}")
        return self.to_image(self.row_maps(index, h * w + class_id))


@torch.inference_mode()
def attention_maps(net: Segmenter, images: torch.Tensor, layer: int, part: Part = "encoder") -> AttentionMaps:
    """The attention of `layer` (0-based) of the encoder or the mask-transformer decoder.

    Args:
        images: B×3×H×W normalized float, any H, W.
    Returns:
        AttentionMaps whose `attention` is B×heads×N×N softmax attention (float32).
    """
    if part not in ("encoder", "decoder"):
        raise ValueError(f"part must be 'encoder' or 'decoder', got {part!r}")
    blocks = net.encoder.blocks if part == "encoder" else getattr(net.decoder, "blocks", None)
    if blocks is None:
        raise ValueError("this model has a linear decoder: it has no attention layers (use part='encoder')")
    if not 0 <= layer < len(blocks):
        raise ValueError(f"layer must be in 0..{len(blocks) - 1} for the {part} ({len(blocks)} layers), got {layer}")
    height, width = images.shape[-2:]
    ps = net.patch_size
    images = F.pad(images, (0, (-width) % ps, 0, (-height) % ps))  # zeros right and bottom, as the forward pass
    if part == "encoder":
        x, grid = net.encoder.embed(images)
        first = net.encoder.num_prefix_tokens
    else:
        tokens, grid = net.encoder(images)
        x, first = net.decoder.embed(tokens), 0
    for block in blocks[:layer]:
        x = block(x)
    return AttentionMaps(_softmax_attention(blocks[layer], x).float(), part, grid, ps, (height, width), first)


# Attention of one layer over a whole image holds heads × tokens² floats: refuse beyond this.
MAX_ATTENTION_ELEMENTS = 150_000_000  # 600 MB of float32


@dataclass(frozen=True)
class ImageAttention:
    """Where one token attends, for one image as the model sees it (resized into its test scale)."""

    image: np.ndarray  # h×w×3 uint8: the image at the scale the model saw it
    maps: AttentionMaps
    layer: int
    token_maps: torch.Tensor  # heads×h×w at patch resolution
    scaled_pixel: tuple[int, int] | None  # the pixel, in `image` coordinates


def image_attention(predictor: Predictor, rgb: np.ndarray, layer: int, part: Part = "encoder",
                    pixel: tuple[int, int] | None = None, class_id: int | None = None,
                    scale: Scale = None) -> ImageAttention:
    """The attention of the token of `pixel` (x, y in `rgb`) or of `class_id` (decoder), for the
    whole image resized as `Predictor` resizes it (its test scale, or `scale`). ValueError for a
    model that is not a torch model, an image too large for one attention matrix, bad tokens."""
    net = predictor.net
    if not isinstance(net, Segmenter):
        raise ValueError("attention maps need the PyTorch model; this predictor runs an exported graph: make one "
                         "from the weights it was exported from, Predictor(load_segmenter(EXPORT_FOLDER))")
    if (pixel is None) == (class_id is None):
        raise ValueError("give a pixel (x, y) or a class, not both and not neither")
    height, width = rgb.shape[:2]
    size = scaled_size(height, width, predictor.rescale_factor(height, width, scale))
    ps = net.patch_size
    tokens = -(-size[0] // ps) * -(-size[1] // ps) + (net.config.num_classes if part == "decoder" else 2)
    heads = net.config.num_heads if part == "encoder" else net.config.decoder_num_heads
    if heads * tokens * tokens > MAX_ATTENTION_ELEMENTS:
        raise TooManyWindows(f"the image at {size[1]}×{size[0]} has {tokens:,} tokens: one attention matrix would "
                             f"hold {heads * tokens * tokens:,} values (limit {MAX_ATTENTION_ELEMENTS:,}); send a "
                             "smaller image or a smaller scale", tokens, MAX_ATTENTION_ELEMENTS)
    image = resize_uint8(rgb, size)
    maps = attention_maps(net, predictor.to_tensor(image), layer, part)
    if class_id is not None:
        row = maps.row_maps(0, maps.grid[0] * maps.grid[1] + class_id) if part == "decoder" else None
        if row is None or not 0 <= class_id < net.config.num_classes:
            raise ValueError(f"class tokens exist in the decoder only, ids 0..{net.config.num_classes - 1}")
        return ImageAttention(image, maps, layer, row, None)
    x, y = pixel
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"pixel ({x}, {y}) is outside the {width}×{height} image")
    scaled = (min(size[1] - 1, int(x * size[1] / width)), min(size[0] - 1, int(y * size[0] / height)))
    return ImageAttention(image, maps, layer, maps.row_maps(0, maps.patch_index(*scaled)), scaled)

def attention_picture(result: ImageAttention, head: int | None = None) -> np.ndarray:
    """The per-head heat maps over the image (one head if `head` is given), titled, with the
    chosen pixel marked: the paper's figure 6. H'×W'×3 uint8."""
    maps = result.maps.to_image(result.token_maps).cpu().numpy()
    heads = list(range(len(maps)))
    if head is not None:
        if not 0 <= head < len(maps):
            raise ValueError(f"head must be in 0..{len(maps) - 1}, got {head}")
        heads = [head]
    titles = [f"{result.maps.part} layer {result.layer} head {h}" for h in heads]
    return heatmap_grid(result.image, maps[heads], titles, marker=result.scaled_pixel)
