"""How close our loading of MMSegmentation checkpoints comes to MMSegmentation 1.2.2 itself.

For mmseg's own Segmenter configs (vit-t mask head, vit-s linear head), shrunk and randomly
initialised, written as an mmengine Runner checkpoint and as a model-zoo file: the largest
logit difference relative to the largest logit (one window, sliding windows) and the share of
equal pixels between `Predictor.predict` and mmseg's `inference_model`.

    python benchmarks/mmseg_parity.py          # docs/weights.md records its output
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from model import Predictor, load_segmenter, plan_windows  # noqa: E402
from testkit import mmseg_reference as mmseg_ref  # noqa: E402


def smooth_rgb(height: int, width: int, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), np.uint8)
    up = torch.nn.functional.interpolate(torch.from_numpy(small).permute(2, 0, 1)[None].float(), size=(height, width),
                                         mode="bilinear")
    return up[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def main() -> None:
    mmseg_ref.import_mmseg()
    print("| head | file | one window (64² / 50×83) | sliding windows (100×150 / 40×50) "
          "| masks equal (100×150 / 30×300 / 45×61) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("mask", "linear"):
            for source in ("runner", "zoo"):
                folder = Path(tmp) / f"{kind}-{source}"
                folder.mkdir()
                if source == "runner":
                    cfg = mmseg_ref.shrunk_config(kind)
                    path = mmseg_ref.write_runner_checkpoint(cfg, folder)
                    reference = mmseg_ref.build(cfg, path)
                else:
                    cfg = mmseg_ref.shrunk_config(kind, window=128, stride=96, test_scale=(2048, 512), patch_bias=True)
                    reference = mmseg_ref.build(cfg, seed=1)
                    path = mmseg_ref.write_zoo_file(reference, folder / "zoo.pth")
                ours = load_segmenter(path)
                predictor = Predictor(ours, max_windows=None)
                with torch.inference_mode():
                    forward = [relative(ours(x), mmseg_ref.forward_logits(reference, x))
                               for x in (torch.randn(2, 3, 64, 64), torch.randn(2, 3, 50, 83))]
                    slide = []
                    for size in ((100, 150), (40, 50)):
                        image = predictor.to_tensor(smooth_rgb(*size, seed=1))
                        plan = plan_windows(image, predictor.window_size, predictor.window_stride, upscale=False)
                        logits = plan.merged(plan.views[0], predictor.run(plan))
                        slide.append(relative(logits, mmseg_ref.slide_logits(reference, image)))
                masks = []
                for size in ((100, 150), (30, 300), (45, 61)):
                    rgb = smooth_rgb(*size, seed=2)
                    masks.append(float((predictor.predict(rgb) == mmseg_ref.predict(reference, rgb)[0]).mean()))
                print(f"| {kind} | {source} | {forward[0]:.1e} / {forward[1]:.1e} | {slide[0]:.1e} / {slide[1]:.1e} | "
                      + " / ".join(f"{100 * m:.2f}%" for m in masks) + " |")


if __name__ == "__main__":
    main()
