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

from model import load_segmenter  # noqa: E402
from testkit import mmseg_reference as mmseg_ref  # noqa: E402
from testkit.mmseg_parity import (  # noqa: E402
    one_window_difference,
    predicted_masks,
    reference_and_file,
    sliding_difference,
    smooth_rgb,
)


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
                reference, path = reference_and_file(kind, source, folder)
                ours = load_segmenter(path)
                forward = [one_window_difference(reference, ours, x)
                           for x in (torch.randn(2, 3, 64, 64), torch.randn(2, 3, 50, 83))]
                slide = [sliding_difference(reference, ours, smooth_rgb(*size, seed=1))
                         for size in ((100, 150), (40, 50))]
                masks = [float(np.equal(*predicted_masks(reference, ours, smooth_rgb(*size, seed=2))).mean())
                         for size in ((100, 150), (30, 300), (45, 61))]
                print(f"| {kind} | {source} | {forward[0]:.1e} / {forward[1]:.1e} | {slide[0]:.1e} / {slide[1]:.1e} | "
                      + " / ".join(f"{100 * m:.2f}%" for m in masks) + " |")


if __name__ == "__main__":
    main()
