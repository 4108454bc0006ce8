"""Segmenter: ViT encoder + decoder, for images of any size (Strudel et al., ICCV 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import SegmenterConfig
from model.metadata import ModelMetadata
from model.modeling.encoder import ViTEncoder
from model.modeling.linear_decoder import LinearDecoder
from model.modeling.mask_transformer import MaskTransformer
from model.modeling.upsample import upsample_logits


class Segmenter(nn.Module):
    """`forward`: B×3×H×W normalized float → B×n_cls×H×W logits, for any H, W.

    Pad right/bottom with zeros to a multiple of the patch size, encode, decode on the patch
    grid, then (config.output_resize) as the official code: upsample bilinearly
    (align_corners=False) ×patch to the padded size and crop the padding off; or as mmseg:
    resize the patch logits bilinearly straight to H×W.
    """

    def __init__(self, cfg: SegmenterConfig, metadata: ModelMetadata | None = None) -> None:
        super().__init__()
        self.config = cfg
        # How to feed the model (classes, normalization, window); set by the checkpoint loaders.
        self.metadata = metadata
        self.patch_size = cfg.patch_size
        self.num_classes = cfg.num_classes
        self.encoder = ViTEncoder(cfg)
        self.decoder: nn.Module
        if cfg.decoder == "linear":
            self.decoder = LinearDecoder(cfg)
        else:
            self.decoder = MaskTransformer(cfg)

    @property
    def metadata(self) -> ModelMetadata | None:
        """How to feed the model and read its output; its patch size and output resize always
        those of this model's config (filled in when metadata is assigned)."""
        return self.__dict__.get("_metadata")

    @metadata.setter
    def metadata(self, metadata: ModelMetadata | None) -> None:
        if metadata is not None:
            metadata = metadata.replace(patch_size=self.config.patch_size, output_resize=self.config.output_resize)
        self.__dict__["_metadata"] = metadata

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names that the optimizer should not decay (position, prefix and class tokens)."""
        names = {f"encoder.{n}" for n in self.encoder.no_weight_decay()}
        names |= {f"decoder.{n}" for n in getattr(self.decoder, "no_weight_decay", set)()}
        return names

    def forward_patches(self, images: torch.Tensor) -> torch.Tensor:
        """images: B×3×H×W float, normalized. Returns B×n_cls×ceil(H/p)×ceil(W/p) float logits on
        the patch grid: the model's answer before its fixed upsampling step (what every window
        forward returns; `model.inference.window_logits` upsamples rows of it on demand)."""
        height, width = images.shape[-2:]
        ps = self.patch_size
        pad_h, pad_w = (-height) % ps, (-width) % ps
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))  # zeros right and bottom
        tokens, grid = self.encoder(images)  # B×(h·w)×D
        return self.decoder(tokens, grid)  # B×C×h×w

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: B×3×H×W float, normalized. Returns B×n_cls×H×W float logits."""
        height, width = images.shape[-2:]
        masks = self.forward_patches(images)  # B×C×h×w
        ps = self.patch_size
        padded = height % ps or width % ps
        if self.config.output_resize == "resize" and padded:
            return F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False)
        masks = upsample_logits(masks, ps)  # B×C×(H+pad_h)×(W+pad_w), bilinear
        return masks[:, :, :height, :width]
