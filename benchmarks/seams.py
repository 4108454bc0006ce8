"""How visible are window borders, and would a weighted blend of overlapping windows help?

Segmenter's protocol (the authors' code and mmseg's `slide_inference`) averages the logits of
overlapping windows uniformly: a pixel's logits jump where a window's coverage starts or ends.
This measures, on a labelled set whose images are larger than the window:

- mIoU with the uniform mean (the paper's protocol) and with the weighted blends of
  `Predictor(blend=...)`, which fade each window toward its borders (linear: a tent; gaussian:
  sigma = window/4, as nnU-Net and MONAI);
- the seam: the mean |step| of the confidence map (max softmax) between neighbouring columns and
  rows that straddle a window border, against the same statistic everywhere else.

    python benchmarks/seams.py                                 # demo-seg-t16 on 100 synthetic 320×320 images
    python benchmarks/seams.py --checkpoint models/demo-seg-t32 --images 200

Window and stride are the checkpoint's (demo: 160, stride 107: a third of overlap); images are
run at their own size (`scale="none"`), so every image needs several windows.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from tqdm import tqdm

from model import Predictor, load_segmenter
from model.inference import BLENDS
from model.scores import ConfusionMatrix
from training.data.synthetic import render


def seam_steps(confidence: torch.Tensor, borders: set[int], axis: int) -> tuple[list[float], list[float]]:
    """|confidence step| between neighbours along `axis` (0: rows, 1: columns): (at borders, elsewhere)."""
    steps = confidence.diff(dim=axis).abs()  # step i is between i and i+1
    at, away = [], []
    for i in range(steps.shape[axis]):
        line = steps.select(axis, i).flatten().tolist()
        (at if i + 1 in borders else away).extend(line)
    return at, away


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/demo-seg-t16")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    net = load_segmenter(args.checkpoint)
    predictor = Predictor(net, device="cpu")
    kinds = BLENDS
    scores = {k: ConfusionMatrix(predictor.num_classes) for k in kinds}
    seams = {k: ([], []) for k in kinds}
    rng = np.random.default_rng(args.seed)
    for _ in tqdm(range(args.images), desc="images"):
        image, label = render(args.size, rng)
        plan = predictor.prepare(image, scale="none")
        logits = predictor.run(plan)
        (view,) = plan.views
        win_h, win_w = view.window
        rows = {t for t, _ in view.anchors} | {t + win_h for t, _ in view.anchors}
        cols = {c for _, c in view.anchors} | {c + win_w for _, c in view.anchors}
        for kind in kinds:
            # The same windows merged each way (`Predictor(blend=...)` does this through its plan).
            ids, confidence = dataclasses.replace(plan, blend=kind).class_ids_and_confidence(logits)
            scores[kind].update(ids, torch.from_numpy(label.astype(np.int64)))
            for axis, borders in ((0, rows), (1, cols)):
                at, away = seam_steps(confidence, borders, axis)
                seams[kind][0].extend(at)
                seams[kind][1].extend(away)
    print(f"\n{args.checkpoint}: {args.images} images {args.size}×{args.size}, window {predictor.window_size}, "
          f"stride {predictor.window_stride}, scale none\n")
    print("| blend | mIoU % | mean confidence step across a window border | elsewhere | ratio |")
    print("|---|---:|---:|---:|---:|")
    for kind in kinds:
        at, away = (float(np.mean(s)) for s in seams[kind])
        print(f"| {kind} | {100 * scores[kind].compute().miou:.2f} | {at:.4f} | {away:.4f} | {at / away:.2f} |")


if __name__ == "__main__":
    main()
