"""Start-up never hangs: any exception while loading or warming up a model marks that model
failed with the reason, the next models still load, and fail-fast exits with the reason."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import service.model_pool as model_pool
from service.main import create_app
from service.model_specs import ModelsFileError
from tests.service.conftest import make_settings, standard_entries, started_client, write_models

FAILURES = [RuntimeError("CUDA error: out of memory"), MemoryError("cannot allocate 4 GiB"),
            KeyError("onnx"), OSError("TensorRT: engine build failed")]


def _fail_for(name: str, real, exc: BaseException):
    def patched(*args, **kwargs):
        spec = args[0].spec if hasattr(args[0], "spec") else args[0]
        if spec.name == name:
            raise exc
        return real(*args, **kwargs)
    return patched


@pytest.mark.parametrize("stage", ["load_model", "warm_up"])
@pytest.mark.parametrize("exc", FAILURES, ids=lambda e: type(e).__name__)
def test_an_exception_at_load_or_warm_up_fails_only_that_model(checkpoints, tmp_path, monkeypatch, stage, exc):
    monkeypatch.setattr(model_pool, stage, _fail_for("tiny-16", getattr(model_pool, stage), exc))
    client = started_client(create_app(make_settings(write_models(tmp_path, standard_entries(checkpoints)))))
    try:
        models = client.get("/readyz").json()["models"]
        assert models["tiny-16"]["state"] == "failed"
        assert type(exc).__name__ in models["tiny-16"]["reason"] or str(exc) in models["tiny-16"]["reason"]
        assert models["tiny-32"]["state"] == "ready"  # the model after the failed one still loads
        metrics = client.get("/metrics").text
        assert 'segmenter_model_state{model="tiny-16",state="failed"} 1.0' in metrics
    finally:
        client.__exit__(None, None, None)


def test_fail_fast_exits_with_the_reason_of_any_exception(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(model_pool, "warm_up", _fail_for("tiny-16", model_pool.warm_up, KeyError("trt")))
    app = create_app(make_settings(write_models(tmp_path, standard_entries(checkpoints)), fail_fast=True))
    with pytest.raises(model_pool.ModelLoadError, match="tiny-16.*KeyError"):
        with TestClient(app):
            pass


def test_a_stride_larger_than_the_checkpoints_window_is_refused_at_start_up(checkpoints, tmp_path):
    # tiny-16's checkpoint has 64-pixel windows; a stride of 100 would leave pixels unsegmented.
    entries = standard_entries(checkpoints)
    entries[0]["window_stride"] = 100
    client = started_client(create_app(make_settings(write_models(tmp_path, entries))))
    try:
        state = client.get("/readyz").json()["models"]["tiny-16"]
        assert state["state"] == "failed" and "stride 100" in state["reason"]
    finally:
        client.__exit__(None, None, None)


def test_a_stride_larger_than_the_configured_window_names_the_entry(checkpoints, tmp_path):
    entries = standard_entries(checkpoints)
    entries[1].update(window_size=64, window_stride=65)
    with pytest.raises(ModelsFileError, match=r"models\[tiny-32\].*window_stride 65 is larger than window_size 64"):
        create_app(make_settings(write_models(tmp_path, entries)))


@pytest.mark.parametrize("field, value", [("max_batch_size", 0), ("batches_in_flight", 0), ("window_stride", 0)])
def test_non_positive_sizes_are_refused_naming_the_entry(checkpoints, tmp_path, field, value):
    entries = standard_entries(checkpoints)
    entries[0][field] = value
    with pytest.raises(ModelsFileError, match=rf"models\[tiny-16\]\.{field}"):
        create_app(make_settings(write_models(tmp_path, entries)))


def test_a_renamed_key_is_read_for_one_release_with_a_warning(checkpoints, tmp_path, caplog):
    from service.model_specs import load_models_file

    entries = standard_entries(checkpoints)
    entries[0]["workers"] = 2  # the name before batches_in_flight
    specs = load_models_file(write_models(tmp_path, entries))
    assert specs.models[0].batches_in_flight == 2 and "`workers` is now `batches_in_flight`" in caplog.text
    entries[0]["batches_in_flight"] = 2
    with pytest.raises(ModelsFileError, match=r"models\[tiny-16\].*give batches_in_flight only"):
        create_app(make_settings(write_models(tmp_path, entries)))
