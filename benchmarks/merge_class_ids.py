"""The merge alone: window logits on the patch grid -> one image's class ids, two ways.

- default: `model.inference.grid_argmax.view_class_ids`, what `WindowPlan.class_ids` runs for one
  view: from the patch grid (separable weights, only the classes that can win multiplied out to
  pixels), except for few classes at the answer's size, where it takes the strip path;
- strip: `model.inference.merge.argmax_resized`, the path before it (every class of every window
  upsampled to pixels a band at a time, then a per-row pruned resize to the answer).

Cases: one 512² window (what benchmarks/official_speedup.py times per window), a 640×480 photo
at ADE20K's test scale (a 512×683 view, two overlapping windows), the same photo answered at
4032×3024 (a 12-MP phone photo). Logits: `random` (every class can win almost everywhere: the
worst case for pruning, what random weights give) and `smooth` (regions, as a trained model
answers: coarse 3×3 noise upsampled to the grid, plus a little noise). No trained 150-class
checkpoint can be downloaded here, so `smooth` stands in for one. Medians; class ids compared.

    python benchmarks/merge_class_ids.py
    python benchmarks/merge_class_ids.py --classes 150 19 --repeats 11
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import median_seconds  # noqa: E402
from model.inference import LogitsGrid, plan_windows  # noqa: E402
from model.inference.grid_argmax import view_class_ids  # noqa: E402
from model.inference.merge import argmax_resized  # noqa: E402
from testkit.window_logits import KINDS, window_logits  # noqa: E402

CASES = {  # name: (view H×W, answer H×W)
    "one 512² window": ((512, 512), (512, 512)),
    "640×480 photo": ((512, 683), (480, 640)),
    "4032×3024 photo": ((512, 683), (3024, 4032)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[150])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| case | classes | logits | strip ms | default ms | speed-up | class ids equal |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, (view, size) in CASES.items():
        plan = plan_windows(torch.zeros(1, 3, *view), 512, 512, grid=LogitsGrid(16), output_size=size)
        (v,) = plan.views
        for num_classes in args.classes:
            for kind in KINDS:
                rows = plan.view_rows(v, window_logits(kind, plan.num_windows, num_classes, (32, 32)))
                repeats = max(3, args.repeats // 3) if size[0] > 1000 else args.repeats
                with torch.inference_mode():
                    strip_ids = argmax_resized(rows, False, size, None)
                    grid_ids = view_class_ids(rows, False, size)
                    strip = median_seconds(lambda: argmax_resized(rows, False, size, None), cpu, repeats=repeats)  # noqa: B023
                    grid = median_seconds(lambda: view_class_ids(rows, False, size), cpu, repeats=repeats)  # noqa: B023
                equal = (strip_ids == grid_ids).double().mean().item()
                print(f"| {name} | {num_classes} | {kind} | {strip * 1e3:.1f} | {grid * 1e3:.1f} | "
                      f"{strip / grid:.2f}× | {equal:.6%} |", flush=True)


if __name__ == "__main__":
    main()
