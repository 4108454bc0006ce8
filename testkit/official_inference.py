"""The official sliding-window inference, re-implemented from the facts sheet as a test oracle.

One image, one scale: upscale so the short side reaches the window (official arithmetic), take
windows every `stride` pixels with the last one flush with the border, run them, sum the
window logits and divide by the per-pixel count, resize back bilinearly, softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def official_probabilities(model, image: torch.Tensor, window: int, stride: int,
                           ori_shape: tuple[int, int] | None = None) -> torch.Tensor:
    """image: 1×3×H×W normalized (already resized by the data pipeline, as in the authors'
    evaluation). Returns C×h×w softmax probabilities at `ori_shape` (the image's size before the
    pipeline's resize; default H×W): logits are resized straight to it, then the softmax."""
    h, w = image.shape[-2:]
    ori_h, ori_w = ori_shape or (h, w)
    if min(h, w) < window:
        if h < w:
            h, w = window, int(w / h * window)
        else:
            h, w = int(h / w * window), window
        image = F.interpolate(image, (h, w), mode="bilinear")
    tops = [t for t in range(0, h, stride) if t < h - window] + [h - window]
    lefts = [s for s in range(0, w, stride) if s < w - window] + [w - window]
    logit = None
    count = torch.zeros(1, h, w)
    for t in tops:
        for s in lefts:
            out = model(image[:, :, t : t + window, s : s + window])[0]
            if logit is None:
                logit = torch.zeros(out.shape[0], h, w)
            logit[:, t : t + window, s : s + window] += out
            count[:, t : t + window, s : s + window] += 1
    logit = F.interpolate((logit / count)[None], (ori_h, ori_w), mode="bilinear")[0]
    return logit.softmax(0)
