"""backend auto (the default): a checkpoint served on the CPU runs through the fastest reduced
precision that passes the accuracy gate, built once into the cache (issue 25)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from export import cpu_supports_bf16
from model import Predictor, load_segmenter
from service import backends
from service.main import create_app
from service.model_specs import ModelsFileError
from testkit.mmseg_checkpoints import to_mmseg
from tests.service.conftest import BUNDLED_DIR, encode, make_settings, post_image, started_client, write_models
from training.data.synthetic import render


@pytest.fixture(scope="module")
def mmseg_file(tmp_path_factory):
    """The trained demo Seg-T/16 written as an MMSegmentation checkpoint: a real model in a real format."""
    net = load_segmenter(BUNDLED_DIR / "demo-seg-t16")
    meta = {"dataset_meta": {"classes": list(net.metadata.class_names),
                             "palette": [list(c) for c in net.metadata.palette]}}
    path = tmp_path_factory.mktemp("mmseg") / "demo_seg_t16.pth"
    torch.save({"meta": meta, "state_dict": to_mmseg(net.state_dict())}, path)
    return path


def _serve(models_file, cache):
    return started_client(create_app(make_settings(models_file, cache_dir=cache, warmup=False)))


def test_an_mmseg_checkpoint_with_nothing_else_set_serves_through_the_gated_fast_path(mmseg_file, tmp_path,
                                                                                       monkeypatch):
    models = write_models(tmp_path, [{"name": "demo", "checkpoint": str(mmseg_file)}])
    builds = []
    real_build = backends.build_fast_path
    monkeypatch.setattr(backends, "build_fast_path", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    client = _serve(models, tmp_path / "cache")
    try:
        (info,) = client.get("/models").json()["models"]
        fast = info["fast_path"]
        assert info["state"] == "ready" and fast["built"] is True
        if cpu_supports_bf16():  # this project's CPUs (AVX512-BF16): OpenVINO bf16, gated
            assert (info["backend"], info["precision"], fast["precision"]) == ("openvino", "bf16", "bf16")
            gate = fast["gate"]
            assert gate["passed"] and gate["pixel_agreement"] >= 0.99 and gate["scenes_kind"] == "synthetic scenes"
            assert fast["folder"].startswith(str(tmp_path / "cache" / "fast-path" / "demo-"))
        else:  # no native bf16 and no calibration images: nothing to build, PyTorch fp32
            assert (info["backend"], info["precision"], fast["gates"]) == ("torch", "fp32", {})
        rgb = render(240, np.random.default_rng(7))[0]
        response = post_image(client, encode(rgb), output="mask")
        served = np.asarray(Image.open(io.BytesIO(response.content)))
        expected = Predictor(load_segmenter(mmseg_file)).predict(rgb)
        assert (served == expected).mean() >= 0.99  # what the gate promised, on a photo it did not see
    finally:
        client.__exit__(None, None, None)
    client = _serve(models, tmp_path / "cache")  # the next start: from the cache
    try:
        (info,) = client.get("/models").json()["models"]
        assert info["fast_path"]["built"] is False and len(builds) == 2
        assert info["fast_path"]["precision"] == fast["precision"]
    finally:
        client.__exit__(None, None, None)


def test_backend_or_precision_pins_the_choice_and_gpu_runs_torch(checkpoints, tmp_path):
    from service.model_specs import load_models_file

    entries = [{"name": "pinned", "checkpoint": str(checkpoints / "tiny-16"), "backend": "torch"},
               {"name": "fp32", "checkpoint": str(checkpoints / "tiny-16"), "precision": "fp32"},
               {"name": "auto", "checkpoint": str(checkpoints / "tiny-16")}]
    specs = {s.name: s for s in load_models_file(write_models(tmp_path, entries)).models}
    assert not specs["pinned"].fast_path and not specs["fp32"].fast_path and specs["auto"].fast_path
    assert not specs["auto"].model_copy(update={"device": "cuda"}).fast_path


def test_calibration_without_the_fast_path_is_refused_naming_why(checkpoints, tmp_path):
    entries = [{"name": "x", "checkpoint": str(checkpoints / "tiny-16"), "backend": "torch",
                "calibration": str(tmp_path)}]
    with pytest.raises(ModelsFileError, match=r"calibration and eval_data build the fast path"):
        create_app(make_settings(write_models(tmp_path, entries)))
