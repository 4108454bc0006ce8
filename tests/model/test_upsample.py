"""The CPU fast path of `upsample_logits` is `F.interpolate(bilinear)`, and steps aside when it must."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.modeling.upsample import upsample_logits


def reference(masks: torch.Tensor, factor: int) -> torch.Tensor:
    h, w = masks.shape[-2:]
    return F.interpolate(masks, size=(h * factor, w * factor), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
@pytest.mark.parametrize("shape", [(1, 150, 4, 4), (3, 5, 7, 3), (2, 3, 1, 1), (1, 2, 5, 9)])
def test_fast_path_equals_interpolate(shape, factor):
    masks = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 5
    with torch.inference_mode():
        got = upsample_logits(masks, factor)
    expected = reference(masks, factor)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=2e-6)


def test_channels_last_input_and_low_precision():
    # The decoders hand over a channels-last view; bf16 may differ by one rounding step.
    tokens = torch.randn(2, 6 * 5, 7, generator=torch.Generator().manual_seed(1))
    masks = tokens.transpose(1, 2).reshape(2, 7, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(upsample_logits(masks, 16), reference(masks, 16), rtol=1e-6, atol=2e-6)
        half = masks.bfloat16()
        torch.testing.assert_close(upsample_logits(half, 16).float(), reference(half, 16).float(), rtol=2e-2, atol=2e-2)


def test_training_gets_the_standard_op_and_its_gradient():
    masks = torch.randn(2, 3, 4, 5, requires_grad=True)
    out = upsample_logits(masks, 16)
    assert out.grad_fn is not None and "UpsampleBilinear2D" in type(out.grad_fn).__name__
    (grad,) = torch.autograd.grad(out.square().sum(), masks)
    (expected,) = torch.autograd.grad(reference(masks, 16).square().sum(), masks)
    torch.testing.assert_close(grad, expected)


def test_odd_factor_falls_back():
    masks = torch.randn(1, 2, 3, 3)
    with torch.inference_mode():
        torch.testing.assert_close(upsample_logits(masks, 3), reference(masks, 3), rtol=0, atol=0)
