"""Architecture of a Segmenter model: one dataclass whose defaults are visible in one place.

The config describes only the network (what `build_segmenter` needs to create the modules).
Everything about *how* to feed it (normalization, window, class names) lives in
`model.metadata.ModelMetadata`, which travels beside the weights in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

DecoderName = Literal["linear", "mask_transformer"]
PosEmbedInterp = Literal["bilinear", "bicubic"]
OutputResize = Literal["upsample_crop", "resize"]


@dataclass(frozen=True)
class SegmenterConfig:
    """Hyper-parameters of the ViT encoder and the decoder.

    Defaults are Seg-B-Mask/16 at the ADE20K crop (512) with the paper's regularization.
    """

    # Encoder (ViT). Head size is 64 in every paper variant: num_heads = embed_dim // 64.
    image_size: int = 512  # training crop; the position embeddings are stored for this grid
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    distilled: bool = False  # DeiT backbone (Seg-B†): a distillation token beside CLS
    # Decoder. The official mask transformer uses the encoder's width and heads.
    decoder: DecoderName = "mask_transformer"
    decoder_depth: int = 2
    num_classes: int = 150
    # Regularization: the paper's stochastic depth 0.1 in the encoder and no dropout there; the
    # authors' mask transformer applies dropout 0.1 (their decoder config), and so do we.
    drop_path_rate: float = 0.1
    dropout: float = 0.0
    decoder_drop_path_rate: float = 0.0
    decoder_dropout: float = 0.1
    # Numerics, so each source's checkpoints compute what they computed where they were trained.
    # Official: PyTorch's LayerNorm eps (1e-5) everywhere, bilinear resizing of position
    # embeddings, patch logits upsampled ×patch over the padded input then cropped.
    # mmseg: eps 1e-6 in the ViT and 1e-5 in the mask head, bicubic, patch logits resized
    # straight to the input size (the two agree when the input is a multiple of the patch).
    layer_norm_eps: float = 1e-5
    decoder_layer_norm_eps: float | None = None  # None: layer_norm_eps
    pos_embed_interp: PosEmbedInterp = "bilinear"
    output_resize: OutputResize = "upsample_crop"

    def __post_init__(self) -> None:
        problems = _type_problems(self)
        if problems:  # the checks below compare numbers: they need the right types first
            raise ValueError("invalid SegmenterConfig: " + "; ".join(problems))
        for name in ("image_size", "patch_size", "embed_dim", "depth", "num_heads", "decoder_depth"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.decoder not in ("linear", "mask_transformer"):
            problems.append(f"decoder must be 'linear' or 'mask_transformer', got {self.decoder!r}")
        if self.num_classes < 1:
            problems.append(f"num_classes must be >= 1, got {self.num_classes}")
        if self.pos_embed_interp not in ("bilinear", "bicubic"):
            problems.append(f"pos_embed_interp must be 'bilinear' or 'bicubic', got {self.pos_embed_interp!r}")
        if self.output_resize not in ("upsample_crop", "resize"):
            problems.append(f"output_resize must be 'upsample_crop' or 'resize', got {self.output_resize!r}")
        for name in ("drop_path_rate", "dropout", "decoder_drop_path_rate", "decoder_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if problems:
            raise ValueError("invalid SegmenterConfig: " + "; ".join(problems))

    @property
    def decoder_num_heads(self) -> int:
        """Heads of the mask transformer: the official code uses embed_dim // 64 (at least 1)."""
        return max(1, self.embed_dim // 64)

    @property
    def decoder_eps(self) -> float:
        """LayerNorm eps of the mask transformer's norms."""
        return self.layer_norm_eps if self.decoder_layer_norm_eps is None else self.decoder_layer_norm_eps

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid of the training crop, the grid the position embeddings are stored at."""
        g = self.image_size // self.patch_size
        return (g, g)

    def replace(self, **changes: Any) -> SegmenterConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmenterConfig:
        """Inverse of `to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown SegmenterConfig field(s) {unknown}; known fields are {sorted(known)}"
            )
        return cls(**data)


def _type_problems(cfg: SegmenterConfig) -> list[str]:
    """Fields whose value is not of the declared type (int, float, bool, optional float; bools are
    not numbers here)."""
    problems = []
    for name, hint in typing.get_type_hints(SegmenterConfig).items():
        value = getattr(cfg, name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if hint is bool:
            ok, expected = isinstance(value, bool), "bool"
        elif hint is int:
            ok, expected = number and isinstance(value, int), "int"
        elif hint is float:
            ok, expected = number, "float"
        elif hint == (float | None):
            ok, expected = number or value is None, "float or null"
        else:
            continue  # Literal fields are checked by value in __post_init__
        if not ok:
            problems.append(f"{name} must be {expected}, got {value!r}")
    return problems
