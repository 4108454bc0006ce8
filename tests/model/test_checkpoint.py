"""Our checkpoint format round-trips bit-exactly; bad checkpoints fail with errors naming the problem."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from model import CheckpointError, load_segmenter, save_checkpoint
from model.checkpoints import read_checkpoint_description
from testkit.official_files import official_net_kwargs, write_official_checkpoint
from tests.conftest import tiny_segmenter


@pytest.mark.parametrize("overrides", [{}, {"decoder": "linear", "patch_size": 8}, {"distilled": True}])
def test_round_trip_is_bit_exact(tmp_path, overrides):
    net = tiny_segmenter(seed=3, **overrides)
    net.metadata = net.metadata.replace(provenance={"run": "test", "step": 7}, window_stride=48)
    save_checkpoint(net, tmp_path / "ckpt")
    loaded = load_segmenter(tmp_path / "ckpt")
    assert loaded.config == net.config
    assert loaded.metadata == net.metadata
    original, restored = net.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    x = torch.randn(1, 3, 50, 70)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded(x))


def test_either_file_of_the_folder_loads(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    for name in ("segmenter.json", "model.safetensors"):
        assert load_segmenter(tmp_path / "ckpt" / name).num_classes == 5


def test_overwrite_replaces_the_whole_folder(tmp_path):
    first, second = tiny_segmenter(seed=1), tiny_segmenter(seed=2)
    save_checkpoint(first, tmp_path / "ckpt")
    save_checkpoint(second, tmp_path / "ckpt")
    loaded = load_segmenter(tmp_path / "ckpt")
    assert torch.equal(loaded.state_dict()["decoder.cls_emb"], second.state_dict()["decoder.cls_emb"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary folders left behind


def test_failed_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    good = tiny_segmenter(seed=1)
    save_checkpoint(good, tmp_path / "ckpt")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("model.checkpoints.folder.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tiny_segmenter(seed=2), tmp_path / "ckpt")
    loaded = load_segmenter(tmp_path / "ckpt")
    assert torch.equal(loaded.state_dict()["decoder.cls_emb"], good.state_dict()["decoder.cls_emb"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_metadata_must_match_the_number_of_classes(tmp_path):
    net = tiny_segmenter(num_classes=4)
    with pytest.raises(ValueError, match="metadata names 5 classes but the model outputs 4"):
        save_checkpoint(net, tmp_path / "ckpt", metadata=tiny_segmenter().metadata)


def test_description_is_readable_without_weights(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    config, meta = read_checkpoint_description(tmp_path / "ckpt")
    assert config.embed_dim == 64 and meta.class_names[0] == "class0"


# --- errors that name the problem ---------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_segmenter(tmp_path / "nope")


def test_folder_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="without segmenter.json"):
        load_segmenter(tmp_path)


def test_missing_weights_file(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_segmenter(tmp_path / "ckpt")


def test_corrupt_description(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "segmenter.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_segmenter(tmp_path / "ckpt")


def test_unknown_config_field(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "segmenter.json"
    data = json.loads(path.read_text())
    data["config"]["n_layerz"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="n_layerz"):
        load_segmenter(tmp_path / "ckpt")


def test_wrong_keys_are_listed(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    state = tiny_segmenter().state_dict()
    state["decoder.extra.weight"] = state.pop("decoder.cls_emb")
    save_file(state, tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys: decoder.cls_emb.*unexpected keys: decoder.extra.weight"):
        load_segmenter(tmp_path / "ckpt")


def test_shape_mismatch_is_named(tmp_path):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    save_file(tiny_segmenter(embed_dim=128, num_heads=2).state_dict(), tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*\(128"):
        load_segmenter(tmp_path / "ckpt")


def test_official_without_variant(tmp_path):
    write_official_checkpoint(tmp_path, official_net_kwargs())
    (tmp_path / "variant.yml").unlink()
    with pytest.raises(CheckpointError, match="variant.yml not found"):
        load_segmenter(tmp_path / "checkpoint.pth")


def test_official_with_wrong_variant(tmp_path):
    write_official_checkpoint(tmp_path, official_net_kwargs(dim=64))
    other = tmp_path / "other"
    write_official_checkpoint(other, official_net_kwargs(dim=128, heads=2))
    (tmp_path / "variant.yml").write_text((other / "variant.yml").read_text())
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_segmenter(tmp_path / "checkpoint.pth")


def test_official_variant_without_net_kwargs(tmp_path):
    write_official_checkpoint(tmp_path, official_net_kwargs())
    (tmp_path / "variant.yml").write_text("dataset_kwargs: {}\n")
    with pytest.raises(CheckpointError, match="no net_kwargs"):
        load_segmenter(tmp_path / "checkpoint.pth")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_official_checkpoint(tmp_path, official_net_kwargs())
    with open(tmp_path / "checkpoint.pth", "wb") as f:
        pickle.dump({"model": Exploit()}, f)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_segmenter(tmp_path / "checkpoint.pth")
    assert not (tmp_path / "pwned").exists()


def test_yaml_with_python_objects_is_refused(tmp_path):
    write_official_checkpoint(tmp_path, official_net_kwargs())
    (tmp_path / "variant.yml").write_text("net_kwargs: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_segmenter(tmp_path / "checkpoint.pth")


def test_saved_checkpoints_are_readable_by_others_as_the_umask_allows(tmp_path):
    import os
    import stat

    from model import save_checkpoint
    from tests.conftest import tiny_segmenter

    old = os.umask(0o022)
    try:
        folder = save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o644}
