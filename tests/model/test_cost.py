"""The cost model agrees with the plan it predicts; limits refuse before work; work can be stopped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cli.main import main
from model import Cancelled, Predictor, TooManyWindows, save_checkpoint
from model.inference import estimate_cost, merge, plan_windows
from model.inference.cost import rescale_factor, scaled_size
from tests.conftest import tiny_segmenter

SIZES = [(64, 64), (63, 200), (200, 63), (1, 500), (97, 131), (300, 301), (2, 2)]


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize("window,stride", [(64, 64), (64, 40), (32, 20)])
@pytest.mark.parametrize("multiscale", [False, True])
@pytest.mark.parametrize("test_scale,upscale", [(None, True), ((256, 64), True), ((256, 64), False), (None, False)])
def test_the_cost_counts_exactly_the_windows_the_plan_cuts(height, width, window, stride, multiscale, test_scale,
                                                           upscale):
    scales = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75) if multiscale else (1.0,)
    flips = (False, True) if multiscale else (False,)
    factor = rescale_factor(height, width, test_scale)
    base = torch.zeros(1, 3, *scaled_size(height, width, factor))  # the Predictor resizes first
    plan = plan_windows(base, window, stride, scales, flips, upscale=upscale, output_size=(height, width))
    cost = estimate_cost(height, width, window, stride, 5, scales, len(flips), factor, upscale)
    assert cost.windows == plan.num_windows
    assert cost.largest_view == max((v.size for v in plan.views), key=lambda hw: hw[0] * hw[1])
    crops_and_logits = sum(g.numel() // 3 for g in plan.groups) * (3 + 5) * 4
    assert cost.bytes > crops_and_logits  # the memory estimate covers at least what the windows hold
    assert plan.image_size == (height, width)


def test_the_predictor_refuses_before_any_work_and_can_be_told_otherwise(tiny_net):
    thin = np.zeros((2, 3000, 3), np.uint8)  # upscaled to 64×96000: 1500 windows
    with pytest.raises(TooManyWindows, match=r"1,500 windows of 64×64 pixels.*limit is 256.*3000×2") as info:
        Predictor(tiny_net).predict(thin)
    assert (info.value.windows, info.value.limit) == (1500, 256)
    small = np.zeros((2, 300, 3), np.uint8)  # 150 windows: allowed by default
    assert Predictor(tiny_net).predict(small).shape == (2, 300)
    with pytest.raises(TooManyWindows, match="multi-scale"):
        Predictor(tiny_net).predict(small, multiscale=True)
    assert Predictor(tiny_net, max_windows=None).prepare(small, multiscale=True).num_windows > 256


def test_stopping_between_steps_raises_cancelled(tiny_net, rng):
    rgb = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    pred = Predictor(tiny_net)
    with pytest.raises(Cancelled):
        pred.prepare(rgb, multiscale=True, should_stop=lambda: True)
    calls = []
    plan = pred.prepare(rgb, multiscale=True, should_stop=lambda: calls.append(1) and False)
    assert len(calls) == len(plan.views)  # checked before every view
    logits = pred.run(plan)
    with pytest.raises(Cancelled):
        pred.finish(plan, logits, should_stop=lambda: True)


@pytest.mark.parametrize("strip_bytes", [None, 4096])  # one strip, or many (as for a huge photo)
@pytest.mark.parametrize("num_classes", [5, 40])  # few classes: whole strips; many: the pruned rows
@pytest.mark.parametrize("size", [(70, 90), (160, 64), (33, 250)])
def test_class_ids_by_strips_equal_the_argmax_of_full_probabilities(rng, size, num_classes, strip_bytes,
                                                                    monkeypatch):
    if strip_bytes:
        monkeypatch.setattr(merge, "STRIP_BYTES", strip_bytes)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    pred = Predictor(tiny_segmenter(seed=3, num_classes=num_classes))
    for multiscale in (False, True):
        plan = pred.prepare(rgb, multiscale)
        logits = pred.run(plan)
        with torch.inference_mode():
            full = plan.probabilities(logits).argmax(0)  # every class resized, softmax
            strips = plan.class_ids(logits)
        assert (full == strips).float().mean() > 0.999


def test_cli_reports_an_image_over_the_window_limit_and_writes_the_others(tmp_path):
    from PIL import Image

    save_checkpoint(tiny_segmenter(), tmp_path / "ckpt")
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "in" / "ok.png")
    Image.fromarray(np.zeros((1, 4000, 3), np.uint8)).save(tmp_path / "in" / "thin.png")
    args = ["predict", str(tmp_path / "in"), "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]
    assert main(args) == 1
    assert (tmp_path / "out" / "ok.png").exists() and not (tmp_path / "out" / "thin.png").exists()
    assert main([*args, "--max-windows", "5000"]) == 0
    assert Image.open(tmp_path / "out" / "thin.png").size == (4000, 1)
