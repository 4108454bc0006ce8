"""MMSegmentation checkpoints: keys renamed, architecture read off the shapes, mmseg numerics."""

from __future__ import annotations

import pytest
import torch

from model import CheckpointError, load_segmenter
from tests.conftest import tiny_segmenter

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


@pytest.mark.parametrize("decoder", ["mask_transformer", "linear"])
def test_mmseg_checkpoint_loads_with_its_numerics(tmp_path, decoder):
    net = tiny_segmenter(seed=6, decoder=decoder, num_classes=150, layer_norm_eps=1e-6, decoder_layer_norm_eps=1e-5,
                         pos_embed_interp="bicubic", output_resize="resize")
    state = to_mmseg(net.state_dict())
    if decoder == "mask_transformer":  # mmseg's mask head also carries an unused conv_seg
        state["decode_head.conv_seg.weight"] = torch.randn(150, 64, 1, 1)
        state["decode_head.conv_seg.bias"] = torch.randn(150)
    torch.save({"meta": {"mmseg_version": "0.30.0", "seed": 0}, "state_dict": state}, tmp_path / "iter_160000.pth")
    loaded = load_segmenter(tmp_path / "iter_160000.pth")
    regularization = dict(drop_path_rate=0.1, dropout=0.0, decoder_drop_path_rate=0.1, decoder_dropout=0.0)
    assert loaded.config == net.config.replace(**regularization)  # the architecture is read off the shapes
    assert loaded.metadata.dataset == "ade20k" and loaded.metadata.window_stride == 32
    assert loaded.metadata.test_scale == (2048, 512) and loaded.metadata.protocol == "mmseg"  # no config: ADE20K's
    x = torch.randn(1, 3, 50, 83)  # another grid (bicubic pos-embed resize), not a multiple of the patch
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), net(x))


def test_mmseg_classes_from_meta(tmp_path):
    net = tiny_segmenter(num_classes=3, layer_norm_eps=1e-6, decoder_layer_norm_eps=1e-5, pos_embed_interp="bicubic",
                         output_resize="resize")
    meta = {"dataset_meta": {"classes": ["sky", "road", "car"], "palette": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}}
    torch.save({"meta": meta, "state_dict": to_mmseg(net.state_dict())}, tmp_path / "m.pth")
    loaded = load_segmenter(tmp_path / "m.pth")
    assert loaded.metadata.class_names == ("sky", "road", "car")
    assert loaded.metadata.palette[2] == (7, 8, 9)


def test_plain_pth_without_variant_explains(tmp_path):
    torch.save({"model": tiny_segmenter().state_dict()}, tmp_path / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="variant.yml not found"):
        load_segmenter(tmp_path / "checkpoint.pth")


def test_a_file_without_the_patch_bias_gets_a_zero_bias(tmp_path):
    """mmseg >= 1.2 trains with patch_bias=False: no bias key, which is a zero bias."""
    net = tiny_segmenter(seed=3, num_classes=150, layer_norm_eps=1e-6, decoder_layer_norm_eps=1e-5,
                         pos_embed_interp="bicubic", output_resize="resize")
    with torch.no_grad():
        net.encoder.patch_embed.proj.bias.zero_()
    state = to_mmseg(net.state_dict())
    del state["backbone.patch_embed.projection.bias"]
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "m.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(load_segmenter(tmp_path / "m.pth")(x), net(x), rtol=0, atol=0)
