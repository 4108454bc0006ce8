"""Initialise the encoder from ImageNet-pretrained ViT weights (the paper's starting point).

Sources, all ending in a timm-keyed state dict that is loaded strictly into the encoder with
its position embeddings resized to the crop's patch grid:
- a timm tag ("vit_base_patch16_384.augreg_in21k_ft_in1k"), downloaded by timm on a connected
  host (optional: nothing at run time needs a hub);
- a local `.npz` (Google's JAX format, read by timm's own converter),
- a local `.safetensors` or `.pth` (timm / DeiT state dict; `.pth` read with weights_only=True).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer

from model.checkpoints.errors import CheckpointError
from model.checkpoints.state_dict import load_weights_strict, torch_load_safely
from model.modeling.encoder import ViTEncoder, resize_pos_embed
from model.modeling.segmenter import Segmenter

# Keys of a timm classifier that the segmentation encoder does not have.
_CLASSIFIER_PREFIXES = ("head.", "head_dist.", "fc_norm.", "pre_logits.")
_NPZ_POS_KEY = "Transformer/posembed_input/pos_embedding"


def load_pretrained_encoder(net: Segmenter | ViTEncoder, source: str | Path) -> None:
    """Copy ImageNet-pretrained weights into the encoder of `net`, in place.

    Args:
        net: a Segmenter (its `.encoder` is used) or a ViTEncoder.
        source: a local .npz/.safetensors/.pth file, or a timm model tag (needs network).
    """
    encoder = net.encoder if isinstance(net, Segmenter) else net
    path = Path(source)
    if path.suffix in (".npz", ".safetensors", ".pth", ".pt", ".bin") or path.exists():
        state = _read_state_file(path, encoder)
        label = str(path)
    else:
        state = _download_timm_state(str(source))
        label = f"timm:{source}"
    state = _adapt_timm_state(state, encoder, label)
    load_weights_strict(encoder, state, label)


def _read_state_file(path: Path, encoder: ViTEncoder) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"no pretrained weights file at {path}")
    if path.suffix == ".npz":
        return _read_npz(path, encoder)
    if path.suffix == ".safetensors":
        return load_file(path)
    data = torch_load_safely(path)
    for key in ("model", "state_dict"):  # DeiT and many training scripts wrap the weights
        if isinstance(data, dict) and key in data and isinstance(data[key], dict):
            data = data[key]
    return data


def _read_npz(path: Path, encoder: ViTEncoder) -> dict[str, torch.Tensor]:
    """Convert a Google ViT .npz with timm's converter, at the file's own patch grid."""
    with np.load(path) as npz:
        if _NPZ_POS_KEY not in npz:
            raise CheckpointError(f"{path} is not a ViT .npz checkpoint ({_NPZ_POS_KEY} missing)")
        num_pos = npz[_NPZ_POS_KEY].shape[1]
    grid = math.isqrt(num_pos - 1)
    if grid * grid != num_pos - 1:
        raise CheckpointError(f"{path}: {num_pos} positions is not 1 CLS token + a square grid")
    vit = VisionTransformer(
        img_size=grid * encoder.patch_size,
        patch_size=encoder.patch_size,
        embed_dim=encoder.embed_dim,
        depth=len(encoder.blocks),
        num_heads=encoder.blocks[0].attn.num_heads,
        num_classes=0,
    )
    try:
        vit.load_pretrained(str(path))
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not fit the encoder ({type(exc).__name__}: {exc})") from None
    return vit.state_dict()


def _download_timm_state(tag: str) -> dict[str, torch.Tensor]:
    import timm

    try:
        model = timm.create_model(tag, pretrained=True, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - network, unknown tag, missing weights
        raise CheckpointError(
            f"could not get pretrained weights {tag!r} from the hub ({type(exc).__name__}: {exc}); "
            "on an offline host pass a local .npz/.safetensors/.pth file instead"
        ) from exc
    return model.state_dict()


def _adapt_timm_state(state: dict[str, torch.Tensor], encoder: ViTEncoder, label: str) -> dict[str, torch.Tensor]:
    """Drop classifier keys and resize the position embeddings to the encoder's grid."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    pos = state.get("pos_embed")
    if pos is not None:
        prefix = encoder.num_prefix_tokens
        old = math.isqrt(pos.shape[1] - prefix)
        if old * old != pos.shape[1] - prefix:
            raise CheckpointError(
                f"{label}: pos_embed has {pos.shape[1]} positions, not {prefix} prefix token(s) + a square grid"
            )
        state["pos_embed"] = resize_pos_embed(
            pos, (old, old), encoder.patch_embed.grid_size, prefix, mode=encoder.pos_embed_interp
        )
    return state
