"""MMSegmentation checkpoints: keys renamed, architecture read off the shapes, mmseg numerics."""

from __future__ import annotations

import pytest
import torch

from model import CheckpointError, load_segmenter
from testkit.mmseg_checkpoints import MMSEG_NUMERICS, to_mmseg
from tests.conftest import tiny_segmenter


@pytest.mark.parametrize("decoder", ["mask_transformer", "linear"])
def test_mmseg_checkpoint_loads_with_its_numerics(tmp_path, decoder):
    net = tiny_segmenter(seed=6, decoder=decoder, num_classes=150, **MMSEG_NUMERICS)
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
    net = tiny_segmenter(num_classes=3, **MMSEG_NUMERICS)
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
    net = tiny_segmenter(seed=3, num_classes=150, **MMSEG_NUMERICS)
    with torch.no_grad():
        net.encoder.patch_embed.proj.bias.zero_()
    state = to_mmseg(net.state_dict())
    del state["backbone.patch_embed.projection.bias"]
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "m.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(load_segmenter(tmp_path / "m.pth")(x), net(x), rtol=0, atol=0)


def test_the_config_stored_in_a_file_is_parsed_once_per_load(tmp_path, monkeypatch):
    import model.checkpoints.mmseg as mmseg

    net = tiny_segmenter(**MMSEG_NUMERICS)
    cfg = "crop_size = (64, 64)\nmodel = dict(test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(48, 48)))\n"
    torch.save({"meta": {"cfg": cfg}, "state_dict": to_mmseg(net.state_dict())}, tmp_path / "m.pth")
    parsed, real = [], mmseg.test_setup
    monkeypatch.setattr(mmseg, "test_setup", lambda text: (parsed.append(text), real(text))[1])
    loaded = load_segmenter(tmp_path / "m.pth")
    assert len(parsed) == 1  # shapes and metadata both come from the one parse
    assert (loaded.metadata.window_size, loaded.metadata.window_stride) == (64, 48)
