"""MMSegmentation's Segmenter checkpoints (the other public source of trained weights).

mmseg stores `{"meta": ..., "state_dict": ...}` with its own key names and no architecture
file, so the architecture is read off the tensor shapes. Its numerics differ from the official
code and are carried in the config, so a loaded model computes what mmseg computes: LayerNorm
eps 1e-6 in the ViT and 1e-5 in the mask head, bicubic position-embedding resize, patch logits
resized straight to the input size; mean = std = 127.5 on 0..255 (0.5 on 0..1). Its inference
protocol goes into the metadata: the window, stride and test scale of the config stored in the
file (mmseg's defaults for the dataset where there is none: crop, crop − 32, ADE20K (2048, 512)),
and images smaller than the window run as one smaller window.

mmseg >= 1.2 trains without a patch-embedding bias (`patch_bias=False`): a missing bias is a
zero bias, exactly. Files written by mmengine's Runner (`iter_N.pth`) also hold mmengine
objects; `model.checkpoints.loading` reads those with a restricted unpickler.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from model.checkpoints.errors import CheckpointError
from model.checkpoints.mmseg_config import TestSetup, test_setup
from model.checkpoints.state_dict import load_weights_strict
from model.class_sets import get_class_set
from model.config import SegmenterConfig
from model.metadata import ModelMetadata
from model.modeling.segmenter import Segmenter

_BLOCK_KEYS = {  # mmseg TransformerEncoderLayer -> timm/official Block
    "ln1": "norm1",
    "attn.attn.in_proj_weight": "attn.qkv.weight",
    "attn.attn.in_proj_bias": "attn.qkv.bias",
    "attn.attn.out_proj": "attn.proj",
    "ln2": "norm2",
    "ffn.layers.0.0": "mlp.fc1",
    "ffn.layers.1": "mlp.fc2",
}
_BUNDLED_BY_COUNT = {150: "ade20k", 60: "pascal_context", 19: "cityscapes"}
# mmseg's own dataset configs' test scales, for files that carry no config.
_MMSEG_TEST_SCALES = {"ade20k": (2048, 512), "pascal_context": (4096, 520), "cityscapes": (2048, 1024)}


def is_mmseg_state(data: Any) -> bool:
    state = data.get("state_dict") if isinstance(data, dict) else None
    return isinstance(state, dict) and any(k.startswith("backbone.") for k in state) and any(
        k.startswith("decode_head.") for k in state
    )


def _rename_block(rest: str) -> str:
    for old, new in _BLOCK_KEYS.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def convert_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mmseg keys -> our (official) keys. Unused heads (`conv_seg` of the mask head) are dropped."""
    mask_head = "decode_head.cls_emb" in state
    out: dict[str, torch.Tensor] = {}
    proj = state.get("backbone.patch_embed.projection.weight")
    if proj is not None and "backbone.patch_embed.projection.bias" not in state:
        out["encoder.patch_embed.proj.bias"] = proj.new_zeros(proj.shape[0])  # patch_bias=False: zero, exactly
    for key, value in state.items():
        if m := re.match(r"backbone\.layers\.(\d+)\.(.+)", key):
            out[f"encoder.blocks.{m[1]}.{_rename_block(m[2])}"] = value
        elif m := re.match(r"decode_head\.layers\.(\d+)\.(.+)", key):
            out[f"decoder.blocks.{m[1]}.{_rename_block(m[2])}"] = value
        elif key.startswith("backbone.patch_embed.projection."):
            out["encoder.patch_embed.proj." + key.rsplit(".", 1)[1]] = value
        elif key in ("backbone.cls_token", "backbone.pos_embed"):
            out["encoder." + key.split(".", 1)[1]] = value
        elif key.startswith("backbone.ln1."):
            out["encoder.norm." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("decode_head.conv_seg."):
            if not mask_head:  # the linear ("fcn", no convs) head: a 1×1 conv over patch tokens
                out["decoder.head." + key.rsplit(".", 1)[1]] = value.flatten(1) if value.dim() == 4 else value
        elif key.startswith("decode_head.dec_proj."):
            out["decoder.proj_dec." + key.rsplit(".", 1)[1]] = value
        elif key == "decode_head.cls_emb":
            out["decoder.cls_emb"] = value
        elif key == "decode_head.patch_proj.weight":
            out["decoder.proj_patch"] = value.t().contiguous()  # Linear weight = official matrixᵀ
        elif key == "decode_head.classes_proj.weight":
            out["decoder.proj_classes"] = value.t().contiguous()
        elif key.startswith(("decode_head.decoder_norm.", "decode_head.mask_norm.")):
            out["decoder." + key.split(".", 1)[1]] = value
        else:
            out[key] = value  # left as is: the strict load names it as unexpected
    return out


def config_from_state(state: dict[str, torch.Tensor], source: str, setup: TestSetup | None = None) -> SegmenterConfig:
    setup = setup or TestSetup()
    try:
        proj = state["encoder.patch_embed.proj.weight"]  # D×3×p×p
        pos = state["encoder.pos_embed"]  # 1×(1+g²)×D
        dim, patch = proj.shape[0], proj.shape[-1]
        grid = math.isqrt(pos.shape[1] - 1)
        depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks."))
        if "decoder.cls_emb" in state:
            decoder, num_classes = "mask_transformer", state["decoder.cls_emb"].shape[1]
            decoder_depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("decoder.blocks."))
        else:
            decoder, num_classes, decoder_depth = "linear", state["decoder.head.weight"].shape[0], 2
        hidden = state["encoder.blocks.0.mlp.fc1.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{source}: not a Segmenter mmseg checkpoint ({exc} missing)") from None
    heads = setup.num_heads or max(1, dim // 64)  # the paper's head size 64 where the file has no config
    if decoder == "mask_transformer" and setup.decoder_num_heads not in (None, max(1, dim // 64)):
        raise CheckpointError(f"{source}: a mask head with {setup.decoder_num_heads} heads for {dim} dimensions is "
                              f"not supported (Segmenter's decoder uses {dim} // 64 = {max(1, dim // 64)})")
    return SegmenterConfig(
        image_size=grid * patch, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
        mlp_ratio=hidden / dim, decoder=decoder, decoder_depth=decoder_depth, num_classes=num_classes,
        layer_norm_eps=1e-6, decoder_layer_norm_eps=1e-5, pos_embed_interp="bicubic", output_resize="resize",
        # Regularization is not stored in weights; these are mmseg's Segmenter defaults.
        drop_path_rate=0.1, dropout=0.0, decoder_drop_path_rate=0.1, decoder_dropout=0.0,
    )


def _config_text(meta: dict) -> str:
    """The config source stored in the file: 1.x `meta.cfg`, 0.x `meta.config`."""
    text = meta.get("cfg") or meta.get("config") or ""
    return text if isinstance(text, str) else ""


def file_setup(meta: Any) -> TestSetup:
    """What the config stored in the file says (nothing when it has none)."""
    text = _config_text(meta) if isinstance(meta, dict) else ""
    return test_setup(text) if text else TestSetup()


def metadata_from_meta(meta: Any, config: SegmenterConfig, source: str, setup: TestSetup) -> ModelMetadata:
    """Classes, palette, normalization and window of an mmseg file (`setup`: its config, parsed once)."""
    meta = meta if isinstance(meta, dict) else {}
    dataset_meta = meta.get("dataset_meta") or {}
    names = dataset_meta.get("classes") or meta.get("CLASSES")
    palette = dataset_meta.get("palette") or meta.get("PALETTE")
    dataset = _BUNDLED_BY_COUNT.get(config.num_classes)
    window = setup.window or config.image_size
    test_scale = setup.test_scale
    if not setup.has_test_pipeline:
        test_scale = _MMSEG_TEST_SCALES.get(dataset) if dataset else None
    mean = tuple(v / 255 for v in setup.mean) if setup.mean else (0.5, 0.5, 0.5)
    std = tuple(v / 255 for v in setup.std) if setup.std else (0.5, 0.5, 0.5)
    common = dict(mean=mean, std=std, window_size=window, window_stride=setup.stride or max(1, window - 32),
                  test_scale=test_scale, protocol="mmseg",
                  provenance={"source": "mmseg", "path": source, "config_in_file": bool(_config_text(meta))})
    if names and len(names) == config.num_classes:
        return ModelMetadata.for_classes([str(n).strip() for n in names], palette=palette,
                                         dataset=dataset or "mmseg", **common)
    if dataset:
        classes = get_class_set(dataset)
        return ModelMetadata(class_names=classes.names, palette=classes.palette, dataset=dataset, **common)
    return ModelMetadata.for_classes([f"class_{i}" for i in range(config.num_classes)], dataset="unknown", **common)


def load_mmseg_checkpoint(data: dict, path: Path) -> Segmenter:
    """Build and load a Segmenter from an mmseg checkpoint already read with weights_only=True."""
    state = convert_state(data["state_dict"])
    setup = file_setup(data.get("meta"))  # the stored config, parsed once for both uses
    config = config_from_state(state, str(path), setup)
    net = Segmenter(config, metadata=metadata_from_meta(data.get("meta"), config, str(path), setup))
    load_weights_strict(net, state, str(path))
    return net.eval()
