"""MMSegmentation-layout checkpoints written from our own tiny nets, without mmseg installed.

MMSEG_NUMERICS  the config overrides that make a net compute what mmseg's Segmenter computes
                (LayerNorm eps, bicubic pos-embed resize, logits resized): what `load_segmenter`
                gives a file it reads as mmseg's
to_mmseg        our state-dict keys -> mmseg's, written from the facts sheet (the inverse of
                what the loader does)
"""

from __future__ import annotations

import torch

MMSEG_NUMERICS = dict(layer_norm_eps=1e-6, decoder_layer_norm_eps=1e-5, pos_embed_interp="bicubic",
                      output_resize="resize")

BLOCK = {"norm1": "ln1", "attn.qkv.weight": "attn.attn.in_proj_weight", "attn.qkv.bias": "attn.attn.in_proj_bias",
         "attn.proj": "attn.attn.out_proj", "norm2": "ln2", "mlp.fc1": "ffn.layers.0.0", "mlp.fc2": "ffn.layers.1"}


def to_mmseg(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys -> mmseg's, written from the facts sheet (the inverse of what the loader does)."""
    out = {}
    for key, value in state.items():
        part, rest = key.split(".", 1)
        if rest.startswith("blocks."):
            _, idx, tail = rest.split(".", 2)
            for ours, theirs in BLOCK.items():
                if tail.startswith(ours):
                    tail = theirs + tail[len(ours):]
                    break
            prefix = "backbone" if part == "encoder" else "decode_head"
            out[f"{prefix}.layers.{idx}.{tail}"] = value
        elif key.startswith("encoder.patch_embed.proj."):
            out["backbone.patch_embed.projection." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("encoder.norm."):
            out["backbone.ln1." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("encoder."):
            out["backbone." + rest] = value
        elif key == "decoder.proj_patch":
            out["decode_head.patch_proj.weight"] = value.t()
        elif key == "decoder.proj_classes":
            out["decode_head.classes_proj.weight"] = value.t()
        elif key.startswith("decoder.proj_dec."):
            out["decode_head.dec_proj." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("decoder.head."):
            out["decode_head.conv_seg." + key.rsplit(".", 1)[1]] = value[..., None, None] if value.dim() == 2 else value
        else:
            out["decode_head." + rest] = value
    return out
