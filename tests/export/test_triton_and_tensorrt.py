"""Triton repository: configs parse as Triton's own protobuf, the logits model answers on the patch
grid, the class-id model answers what the Python path answers; TensorRT is optional and says so."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from google.protobuf import text_format

from cli.main import main
from export import export_onnx, read_exported, write_triton_repository
from model import Predictor, load_segmenter, save_checkpoint
from tests.conftest import tiny_segmenter

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo-seg-t16"

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    save_checkpoint(tiny_segmenter(num_classes=7), folder / "ckpt")
    export_onnx(load_segmenter(folder / "ckpt"), folder / "seg-t", source="../ckpt")  # as the CLI records it
    return read_exported(folder / "seg-t")


def parse_config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def session_output(graph, windows):
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] and [i.name for i in session.get_inputs()] == ["images"]
    return session.run(None, {"images": np.ascontiguousarray(windows, dtype=np.float32)})[0]


def test_triton_onnx_repository(exported, tmp_path):
    folder = write_triton_repository(exported, tmp_path / "repo", max_batch_size=16)
    config = parse_config(folder / "config.pbtxt")
    assert config.name == "seg_t" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert [(i.name, list(i.dims), i.data_type) for i in config.input] == [("images", [3, 64, 64],
                                                                             model_config_pb2.TYPE_FP32)]
    # The logits model answers on the 16-px patch grid, as its config says and its graph does.
    assert [(o.name, list(o.dims)) for o in config.output] == [("logits", [7, 4, 4])]
    assert session_output(folder / "1" / "model.onnx", np.zeros((3, 3, 64, 64))).shape == (3, 7, 4, 4)
    assert list(config.dynamic_batching.preferred_batch_size) == [8, 16]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert (folder / "1" / "model.onnx").read_bytes() == exported.onnx_path.read_bytes()
    assert (folder / "segmenter.json").is_file()
    # ... and the class-id model beside it: B×64×64 uint8 class ids, batched the same way.
    ids = parse_config(tmp_path / "repo" / "seg_t_class_ids" / "config.pbtxt")
    assert ids.name == "seg_t_class_ids" and ids.platform == "onnxruntime_onnx" and ids.max_batch_size == 16
    assert [(i.name, list(i.dims)) for i in ids.input] == [("images", [3, 64, 64])]
    assert [(o.name, list(o.dims), o.data_type) for o in ids.output] == [("class_ids", [64, 64],
                                                                          model_config_pb2.TYPE_UINT8)]
    assert list(ids.dynamic_batching.preferred_batch_size) == [8, 16]
    assert (tmp_path / "repo" / "seg_t_class_ids" / "segmenter.json").read_bytes() == \
        (folder / "segmenter.json").read_bytes()
    out = session_output(tmp_path / "repo" / "seg_t_class_ids" / "1" / "model.onnx", np.zeros((3, 3, 64, 64)))
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8


def test_the_class_id_model_equals_the_python_path_for_one_window(tmp_path, rng):
    """A trained model (the demo Seg-T/16, 160-px windows): an image exactly one window large,
    its test scale off, through `Predictor.predict` (patch-grid logits, the merge's upsampling,
    argmax) gives the class ids the Triton class-id model gives for that window."""
    from export.parity import synthetic_scene

    net = load_segmenter(DEMO)
    exported = read_exported(export_onnx(net, tmp_path / "export"))
    write_triton_repository(exported, tmp_path / "repo", name="demo", net=net)
    predictor = Predictor(net)
    images = [synthetic_scene(160, 160, rng) for _ in range(3)]
    windows = torch.cat([predictor.to_tensor(rgb) for rgb in images]).numpy()
    got = session_output(tmp_path / "repo" / "demo_class_ids" / "1" / "model.onnx", windows)
    for rgb, ids in zip(images, got, strict=True):
        np.testing.assert_array_equal(ids, predictor.predict(rgb, scale="none"))
    # The logits model of the same repository answers on the 10×10 patch grid.
    assert session_output(tmp_path / "repo" / "demo" / "1" / "model.onnx", windows).shape == (3, 5, 10, 10)


@pytest.mark.parametrize("output_resize", ["upsample_crop", "resize"])
def test_the_class_id_model_upsamples_as_the_model_does(tmp_path, output_resize):
    # 72-px windows, patch 16: ×16 over the padded 80 px then a crop (the authors'), or straight
    # to 72 (mmseg): the in-graph upsampling is the model's own, so its argmax is argmax(net(x)).
    net = tiny_segmenter(seed=6, num_classes=7, output_resize=output_resize)
    exported = read_exported(export_onnx(net, tmp_path / "export", window_size=72))
    write_triton_repository(exported, tmp_path / "repo", name="m", net=net)
    x = torch.randn(4, 3, 72, 72)
    got = session_output(tmp_path / "repo" / "m_class_ids" / "1" / "model.onnx", x.numpy())
    with torch.inference_mode():
        expected = net(x).argmax(dim=1).numpy()
    assert (got == expected).mean() >= 0.9999
    assert parse_config(tmp_path / "repo" / "m" / "config.pbtxt").output[0].dims == [7, 5, 5]


def test_the_class_id_model_of_many_classes_is_int32(tmp_path):
    net = tiny_segmenter(seed=7, num_classes=300)
    exported = read_exported(export_onnx(net, tmp_path / "export"))
    write_triton_repository(exported, tmp_path / "repo", name="m", net=net)
    assert parse_config(tmp_path / "repo" / "m_class_ids" / "config.pbtxt").output[0].data_type == \
        model_config_pb2.TYPE_INT32
    x = torch.randn(1, 3, 64, 64)
    got = session_output(tmp_path / "repo" / "m_class_ids" / "1" / "model.onnx", x.numpy())
    with torch.inference_mode():
        assert got.dtype == np.int32 and (got == net(x).argmax(dim=1).numpy()).mean() >= 0.9999


def test_triton_cli_cpu_instance(exported, tmp_path, capsys):
    assert main(["export", "triton", "--export-dir", str(exported.folder), "--out", str(tmp_path / "repo"), "--name",
                 "fast", "--cpu", "--max-batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "PASS: fast_class_ids (ONNX Runtime) vs PyTorch's argmax" in out and "100.000% of pixels agree" in out
    for name in ("fast", "fast_class_ids"):  # the class-id model is built from the export's own checkpoint
        config = parse_config(tmp_path / "repo" / name / "config.pbtxt")
        assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]


def test_triton_without_the_source_checkpoint_names_the_fix(exported, tmp_path, capsys):
    orphan = tmp_path / "orphan"
    export_onnx(load_segmenter(exported.folder), orphan)  # records no checkpoint
    assert main(["export", "triton", "--export-dir", str(orphan), "--out", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint CKPT" in err and "--no-class-ids" in err
    assert not (tmp_path / "repo").exists()
    assert main(["export", "triton", "--export-dir", str(orphan), "--out", str(tmp_path / "repo"),
                 "--no-class-ids"]) == 0
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["orphan"]
    assert main(["export", "triton", "--export-dir", str(orphan), "--out", str(tmp_path / "repo"),
                 "--checkpoint", str(exported.folder.parent / "ckpt")]) == 0
    assert (tmp_path / "repo" / "orphan_class_ids" / "1" / "model.onnx").is_file()


def test_triton_tensorrt_platform_needs_an_engine(exported, tmp_path, capsys):
    code = main(["export", "triton", "--export-dir", str(exported.folder), "--out", str(tmp_path / "repo"),
                 "--platform", "tensorrt"])
    assert code == 2 and "no TensorRT engine" in capsys.readouterr().err
    (exported.folder / "model.plan").write_bytes(b"engine bytes")
    try:
        folder = write_triton_repository(exported, tmp_path / "repo", platform="tensorrt", class_ids=False)
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
