"""Triton repository config parses as Triton's own protobuf; TensorRT is optional and says so."""

from __future__ import annotations

import importlib.util

import pytest
from google.protobuf import text_format

from cli.main import main
from export import export_onnx, read_exported, write_triton_repository
from tests.conftest import tiny_segmenter

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    export_onnx(tiny_segmenter(num_classes=7), folder / "seg-t")
    return read_exported(folder / "seg-t")


def parse_config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_triton_onnx_repository(exported, tmp_path):
    folder = write_triton_repository(exported, tmp_path / "repo", max_batch_size=16)
    config = parse_config(folder / "config.pbtxt")
    assert config.name == "seg_t" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert [(i.name, list(i.dims), i.data_type) for i in config.input] == [("images", [3, 64, 64],
                                                                             model_config_pb2.TYPE_FP32)]
    assert [(o.name, list(o.dims)) for o in config.output] == [("logits", [7, 64, 64])]
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert (folder / "1" / "model.onnx").read_bytes() == exported.onnx_path.read_bytes()
    assert (folder / "segmenter.json").is_file()


def test_triton_cli_cpu_instance(exported, tmp_path, capsys):
    assert main(["export", "triton", "--export-dir", str(exported.folder), "--out", str(tmp_path / "repo"), "--name",
                 "fast", "--cpu", "--max-batch", "4"]) == 0
    config = parse_config(tmp_path / "repo" / "fast" / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]


def test_triton_tensorrt_platform_needs_an_engine(exported, tmp_path, capsys):
    code = main(["export", "triton", "--export-dir", str(exported.folder), "--out", str(tmp_path / "repo"),
                 "--platform", "tensorrt"])
    assert code == 2 and "no TensorRT engine" in capsys.readouterr().err
    (exported.folder / "model.plan").write_bytes(b"engine bytes")
    try:
        folder = write_triton_repository(exported, tmp_path / "repo", platform="tensorrt")
        assert parse_config(folder / "config.pbtxt").platform == "tensorrt_plan"
        assert (folder / "1" / "model.plan").read_bytes() == b"engine bytes"
    finally:
        (exported.folder / "model.plan").unlink()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_clear_error(exported, capsys):
    assert main(["export", "tensorrt", "--export-dir", str(exported.folder), "--fp16"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err and "TensorrtExecutionProvider" not in err
    assert "pip install" in err


def test_missing_export_folder_is_explained(tmp_path, capsys):
    assert main(["export", "triton", "--export-dir", str(tmp_path), "--out", str(tmp_path / "repo")]) == 2
    assert "segmenter.json is missing" in capsys.readouterr().err
