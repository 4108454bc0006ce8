"""ONNX export: patch-grid logits out, parity with PyTorch (at the grid and after the merge) for
every decoder and patch size, dynamic batch, refusal of graphs that do not match, official
checkpoints, version-1 folders (full-size logits) still served and checked."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from cli.main import main
from export import OnnxRuntimeRunner, export_onnx, ort_providers, read_exported
from export.artifact import VERSION
from model import Predictor, load_segmenter, save_checkpoint
from model.inference.window_logits import upsample_window_logits
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
    assert "PASS" in out and "argmax agreement 100" in out and "after the merge, class ids of 2 images" in out
    exported = read_exported(tmp_path / "onnx")
    graph = onnx.load(exported.onnx_path)
    assert graph.opset_import[0].version >= 17
    ops = {n.op_type for n in graph.graph.node}
    # No upsampling in the graph: it ends at the patch-grid logits (the merge upsamples them).
    assert "LayerNormalization" in ops and "Resize" not in ops and "Loop" not in ops
    assert [i.name for i in graph.graph.input] == ["images"] and [o.name for o in graph.graph.output] == ["logits"]
    grid = 64 // patch
    dims = [d.dim_value or d.dim_param for d in graph.graph.output[0].type.tensor_type.shape.dim]
    assert dims[1:] == [5, grid, grid] and isinstance(dims[0], str)  # B dynamic, C×gh×gw static
    assert exported.output_grid == (grid, grid) and exported.logits_shape == (5, grid, grid)
    assert exported.version == VERSION == 2
    report = json.loads((tmp_path / "onnx" / "parity_onnxruntime.json").read_text())
    assert report["merged_agreement"] == 1.0 and report["images"] == 2 and report["passed"]


@pytest.mark.parametrize("output_resize", ["upsample_crop", "resize"])
def test_a_window_the_patch_does_not_divide_exports_its_padded_grid(tmp_path, capsys, output_resize):
    # 72-px windows, patch 16: the model pads to 80, so the grid is 5×5; the merge upsamples it as
    # the model does (×16 then crop, or mmseg's resize straight to 72), checked after the merge.
    save_checkpoint(tiny_segmenter(seed=4, output_resize=output_resize), tmp_path / "ckpt")
    code = main(["export", "onnx", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "onnx"),
                 "--window", "72"])
    out = capsys.readouterr().out
    assert code == 0, out
    exported = read_exported(tmp_path / "onnx")
    assert exported.window_size == 72 and exported.output_grid == (math.ceil(72 / 16),) * 2 == (5, 5)
    assert exported.metadata.logits_grid.output_resize == output_resize
    x = torch.randn(2, 3, 72, 72)
    logits = OnnxRuntimeRunner(exported)(x)
    net = load_segmenter(tmp_path / "ckpt")
    with torch.inference_mode():
        torch.testing.assert_close(logits, net.forward_patches(x), atol=1e-4, rtol=1e-4)
        full = net(x)
    torch.testing.assert_close(upsample_window_logits(logits, (72, 72), exported.metadata.logits_grid), full,
                               atol=1e-4, rtol=1e-4)
    assert "after the merge, class ids of 2 images agree on 100.000%" in out


def test_dynamic_batch_gives_the_same_per_image_logits(exported_mask16):
    runner = OnnxRuntimeRunner(read_exported(exported_mask16 / "onnx"))
    x = torch.randn(5, 3, 64, 64)
    batched = runner(x)
    singles = torch.cat([runner(x[i : i + 1]) for i in range(5)])
    assert batched.shape == (5, 5, 4, 4)  # the 16-px patch grid of 64-px windows
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)
    net = load_segmenter(exported_mask16 / "ckpt")
    with torch.inference_mode():
        torch.testing.assert_close(batched, net.forward_patches(x), atol=1e-4, rtol=1e-4)
        # Upsampled as the model's own last step, they are the full-size logits.
        grid = read_exported(exported_mask16 / "onnx").metadata.logits_grid
        torch.testing.assert_close(upsample_window_logits(batched, (64, 64), grid), net(x), atol=1e-4, rtol=1e-4)


def test_metadata_travels_with_the_graph(exported_mask16):
    exported = read_exported(exported_mask16 / "onnx")
    original = load_segmenter(exported_mask16 / "ckpt").metadata
    assert exported.metadata == original and exported.window_size == 64
    assert exported.metadata.patch_size == 16 and exported.metadata.output_resize == "upsample_crop"
    onnx_info = json.loads((exported_mask16 / "onnx" / "segmenter.json").read_text())["onnx"]
    assert onnx_info["output_grid"] == [4, 4] and onnx_info["output"] == "logits"


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
    exported = read_exported(tmp_path / "onnx")
    x = torch.randn(2, 3, 64, 64)
    logits = OnnxRuntimeRunner(exported)(x)
    assert logits.shape == (2, 19, *exported.output_grid)
    with torch.inference_mode():  # the authors' model upsamples itself: compare at pixels
        torch.testing.assert_close(upsample_window_logits(logits, (64, 64), exported.metadata.logits_grid), ref(x),
                                   atol=1e-4, rtol=1e-4)


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


def write_version_1_export(net, folder):
    """An export folder as version 1 wrote it: the graph upsamples, logits B×C×ws×ws, no output_grid."""
    from export.onnx_export import _export_graph

    export_onnx(net, folder)
    _export_graph(net, net.metadata.window_size, folder / "model.onnx", "logits", 18)  # full-size forward
    description = json.loads((folder / "segmenter.json").read_text())
    description["version"] = 1
    del description["onnx"]["output_grid"]
    (folder / "segmenter.json").write_text(json.dumps(description))


def test_a_version_1_folder_still_serves_and_checks(exported_mask16, tmp_path, capsys, rng):
    net = load_segmenter(exported_mask16 / "ckpt")
    write_version_1_export(net, tmp_path / "v1")
    exported = read_exported(tmp_path / "v1")
    assert exported.version == 1 and exported.output_grid == (64, 64) and exported.logits_shape == (5, 64, 64)
    runner = OnnxRuntimeRunner(exported)
    assert runner(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)
    # The merge takes full-size logits as they are: the same answer as the patch-grid path.
    rgb = rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)
    old = Predictor(None, metadata=exported.metadata, forward=runner, window_stride=40)
    np.testing.assert_allclose(old.probabilities(rgb), Predictor(net, window_stride=40).probabilities(rgb), atol=1e-5)
    # `export check` compares it with PyTorch's full-size forward, then after the merge.
    code = main(["export", "check", "--export-dir", str(tmp_path / "v1"), "--checkpoint",
                 str(exported_mask16 / "ckpt")])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("PASS") and "after the merge, class ids of 2 images agree on 100.000%" in out
