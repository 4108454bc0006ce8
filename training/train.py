"""Train a Segmenter: `python training/train.py --config training/configs/<name>.yaml [key=value ...]`.

Multi-GPU / multi-node: `torchrun --nproc_per_node N training/train.py --config ...`.
Continue an interrupted run: add `--resume` (same config and run.out_dir).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import load_config  # noqa: E402
from training.trainer import train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML (training/configs/)")
    parser.add_argument("--resume", action="store_true", help="continue from run.out_dir/last")
    parser.add_argument("--stop-at", type=int, help="stop at this iteration (the schedule still spans the run)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value, e.g. optim.lr=5e-4 run.iterations=1000")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = train(cfg, resume=args.resume, stop_at=args.stop_at)
    if result:
        print(f"mIoU {100 * result['miou']:.2f} at iteration {result['iteration']} -> {cfg.run.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
