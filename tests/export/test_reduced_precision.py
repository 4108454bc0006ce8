"""bf16 / int8 CPU variants: made from an export, kept only through the accuracy gate, served as gated.

The model is the bundled demo Seg-T/16 (trained: a random tiny net has no margin between its
classes, so any rounding flips pixels and says nothing about quantization), its labelled data
the synthetic validation split it was evaluated on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from export import (
    OpenVinoRunner,
    cpu_supports_bf16,
    export_onnx,
    make_reduced_precision,
    read_calibration_images,
    read_exported,
    read_labelled,
)
from model import Predictor, load_segmenter
from service.backends import ModelLoadError, load_model
from service.model_specs import ModelSpec

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo-seg-t16"
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from training.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, train=64, val=24, seed=7)
    return root


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, data) -> tuple[Path, object]:
    folder = export_onnx(load_segmenter(DEMO), tmp_path_factory.mktemp("int8") / "export")
    report = make_reduced_precision(load_segmenter(DEMO), read_exported(folder), "int8",
                                    read_calibration_images(data / "images" / "train"), read_labelled(data))
    return folder, report


def test_int8_of_a_trained_model_passes_its_gate_and_is_recorded(int8_export):
    folder, report = int8_export
    assert report.passed, report.summary()
    assert report.pixel_agreement >= 0.99 and report.miou_drop <= 0.5 and report.eval_images == 24
    exported = read_exported(folder)
    graph, inference = exported.reduced_precision("int8")
    assert graph == folder / "model_int8.xml" and graph.with_suffix(".bin").is_file()
    assert exported.precisions["int8"]["gate"]["passed"] is True
    assert json.loads((folder / "gate_int8.json").read_text())["pixel_agreement"] == report.pixel_agreement
    assert inference in ("bf16", "fp32")
    # The label says what is int8 and what is not (it read "int8 (bf16 elsewhere)": issue 27).
    assert report.candidate.endswith(f"other layers in {inference})") and "NNCF-quantized" in report.candidate


def test_a_damaged_model_fails_the_gate_and_leaves_nothing_to_serve(tmp_path, data):
    damaged = load_segmenter(DEMO)
    with torch.no_grad():  # one weight tensor scaled by 10 before quantization
        damaged.encoder.blocks[1].mlp.fc1.weight.mul_(10)
    folder = export_onnx(damaged, tmp_path / "export")
    report = make_reduced_precision(load_segmenter(DEMO), read_exported(folder), "int8",
                                    read_calibration_images(data / "images" / "train"), read_labelled(data))
    assert not report.passed and report.pixel_agreement < 0.99
    assert not (folder / "model_int8.xml").exists() and not (folder / "model_int8.bin").exists()
    with pytest.raises(Exception, match="has not passed the accuracy gate for int8"):
        read_exported(folder).reduced_precision("int8")
    assert json.loads((folder / "gate_int8.json").read_text())["passed"] is False


def test_the_service_serves_the_gated_int8_graph(int8_export, data):
    folder, _ = int8_export
    loaded = load_model(ModelSpec(name="demo-int8", checkpoint=str(folder), backend="openvino", precision="int8"))
    assert loaded.backend_detail.startswith("openvino int8")
    graph, inference = read_exported(folder).reduced_precision("int8")
    expected = Predictor(None, metadata=read_exported(folder).metadata, forward=OpenVinoRunner(graph, inference))
    rgb = read_calibration_images(data / "images" / "val", 1)[0]
    np.testing.assert_array_equal(loaded.predictor.predict(rgb), expected.predict(rgb))
    # The int8 graph, quantized from the patch-grid graph, answers on the patch grid too.
    assert expected.forward(torch.zeros(2, 3, 160, 160)).shape == (2, 5, 10, 10)


def test_an_ungated_precision_is_refused_with_the_fix(tmp_path):
    folder = export_onnx(load_segmenter(DEMO), tmp_path / "export")
    with pytest.raises(ModelLoadError, match="segmenter export onnx --precision bf16"):
        load_model(ModelSpec(name="x", checkpoint=str(folder), backend="openvino", precision="bf16"))
    with pytest.raises(ValueError, match="served by backend openvino"):
        ModelSpec(name="x", checkpoint="x", backend="torch", precision="int8")
    with pytest.raises(ValueError, match="runs on device cpu"):
        ModelSpec(name="x", checkpoint="x", backend="openvino", device="cuda")


def test_openvino_fp32_equals_pytorch(tmp_path):
    net = load_segmenter(DEMO)
    folder = export_onnx(net, tmp_path / "export")
    windows = torch.randn(3, 3, 160, 160)
    got = OpenVinoRunner(read_exported(folder).onnx_path, "fp32")(windows)
    with torch.inference_mode():
        expected = net.forward_patches(windows)
    assert got.shape == (3, 5, 10, 10)  # the 16-px patch grid of 160-px windows
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-4)


@needs_bf16
def test_bf16_cli_records_the_gate_figures(tmp_path, data, capsys):
    code = main(["export", "onnx", "--checkpoint", str(DEMO), "--out", str(tmp_path / "export"),
                 "--precision", "bf16", "--eval-data", str(data)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS: OpenVINO bf16 vs PyTorch fp32" in out and "mIoU on 24 labelled images" in out
    entry = read_exported(tmp_path / "export").precisions["bf16"]
    assert entry["file"] == "model.onnx" and entry["inference_precision"] == "bf16"
    logits = OpenVinoRunner(tmp_path / "export" / "model.onnx", "bf16")(torch.zeros(1, 3, 160, 160))
    assert logits.dtype == torch.bfloat16 and logits.shape == (1, 5, 10, 10)


def test_int8_without_calibration_images_is_refused_before_any_work(tmp_path, capsys):
    code = main(["export", "onnx", "--checkpoint", str(DEMO), "--out", str(tmp_path / "export"),
                 "--precision", "int8"])
    assert code == 2 and "--precision int8 needs --calibration DIR" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()
