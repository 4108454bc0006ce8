"""ONNX export: parity with PyTorch for every decoder and patch size, dynamic batch, refusal of
graphs that do not match, official checkpoints."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from cli.main import main
from export import OnnxRuntimeRunner, export_onnx, ort_providers, read_exported
from model import load_segmenter, save_checkpoint
from testkit.official_files import official_net_kwargs, write_official_checkpoint
from tests.conftest import tiny_segmenter


@pytest.fixture(scope="module")
def exported_mask16(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mask16")
    net = tiny_segmenter(seed=1)
    save_checkpoint(net, folder / "ckpt")
    export_onnx(load_segmenter(folder / "ckpt"), folder / "onnx")
    return folder


@pytest.mark.parametrize("decoder", ["linear", "mask_transformer"])
@pytest.mark.parametrize("patch", [8, 16, 32])
def test_export_matches_pytorch(tmp_path, capsys, decoder, patch):
    save_checkpoint(tiny_segmenter(seed=2, decoder=decoder, patch_size=patch), tmp_path / "ckpt")
    code = main(["export", "onnx", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "onnx")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "argmax agreement 100" in out
    exported = read_exported(tmp_path / "onnx")
    graph = onnx.load(exported.onnx_path)
    assert graph.opset_import[0].version >= 17
    ops = {n.op_type for n in graph.graph.node}
    # One standard Resize for the logits: the eager-only CPU upsampling fast path stays out.
    assert "LayerNormalization" in ops and "Resize" in ops and "Loop" not in ops
    assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == ["logits"]


def test_dynamic_batch_gives_the_same_per_image_logits(exported_mask16):
    runner = OnnxRuntimeRunner(read_exported(exported_mask16 / "onnx"))
    x = torch.randn(5, 3, 64, 64)
    batched = runner(x)
    singles = torch.cat([runner(x[i : i + 1]) for i in range(5)])
    assert batched.shape == (5, 5, 64, 64)
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(batched, load_segmenter(exported_mask16 / "ckpt")(x), atol=1e-4, rtol=1e-4)


def test_metadata_travels_with_the_graph(exported_mask16):
    exported = read_exported(exported_mask16 / "onnx")
    original = load_segmenter(exported_mask16 / "ckpt").metadata
    assert exported.metadata == original and exported.window_size == 64


def corrupt(path):
    graph = onnx.load(path)
    for init in graph.graph.initializer:
        if "mask_norm" in init.name and init.name.endswith("weight"):
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
            break
    else:
        raise AssertionError("no mask_norm weight in the graph")
    onnx.save(graph, path)


def test_check_fails_loudly_on_a_corrupted_graph(exported_mask16, capsys):
    corrupt(exported_mask16 / "onnx" / "model.onnx")
    try:
        code = main(["export", "check", "--export-dir", str(exported_mask16 / "onnx"), "--checkpoint",
                     str(exported_mask16 / "ckpt")])
        out = capsys.readouterr().out
        assert code == 1
        assert out.startswith("FAIL") and "argmax agreement" in out
    finally:
        export_onnx(load_segmenter(exported_mask16 / "ckpt"), exported_mask16 / "onnx")  # restore for others


def test_failed_export_is_not_handed_over(tmp_path, capsys):
    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    code = main(["export", "onnx", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "onnx"),
                 "--min-agreement", "1.01"])  # an impossible threshold: the check must fail
    assert code == 1
    assert "cannot be served" in capsys.readouterr().err
    assert not (tmp_path / "onnx" / "segmenter.json").exists()
    with pytest.raises(Exception, match="segmenter.json is missing"):
        read_exported(tmp_path / "onnx")


def test_official_checkpoint_exports(tmp_path, capsys):
    ref = write_official_checkpoint(tmp_path / "official", official_net_kwargs(n_cls=19), dataset="cityscapes")
    code = main(["export", "onnx", "--checkpoint", str(tmp_path / "official" / "checkpoint.pth"),
                 "--out", str(tmp_path / "onnx")])
    assert code == 0, capsys.readouterr()
    runner = OnnxRuntimeRunner(read_exported(tmp_path / "onnx"))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(runner(x), ref(x), atol=1e-4, rtol=1e-4)


def test_sliding_window_through_onnx_equals_pytorch(exported_mask16, rng):
    # The same tile/run/merge parts drive any backend: a full image through ORT == through torch.
    from model import Predictor

    net = load_segmenter(exported_mask16 / "ckpt")
    rgb = rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)
    torch_pred = Predictor(net, window_stride=40)
    onnx_pred = Predictor(net, window_stride=40, forward=OnnxRuntimeRunner(read_exported(exported_mask16 / "onnx")))
    np.testing.assert_allclose(onnx_pred.probabilities(rgb), torch_pred.probabilities(rgb), atol=1e-5)


def test_tensorrt_provider_options():
    providers = ort_providers("tensorrt", tensorrt_cache="/tmp/trt-cache", fp16=True, window=512, max_batch=8)
    name, options = providers[0]
    assert name == "TensorrtExecutionProvider"
    assert options["trt_engine_cache_enable"] and options["trt_engine_cache_path"] == "/tmp/trt-cache"
    assert options["trt_fp16_enable"] and options["trt_layer_norm_fp32_fallback"]
    assert options["trt_profile_min_shapes"] == "images:1x3x512x512"
    assert options["trt_profile_max_shapes"] == "images:8x3x512x512"
    assert [p if isinstance(p, str) else p[0] for p in providers[1:]] == ["CUDAExecutionProvider",
                                                                         "CPUExecutionProvider"]
