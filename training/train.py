"""Train a Segmenter: `python training/train.py --config training/configs/<name>.yaml [key=value ...]`.

The same as `segmenter train ...` (options: `--help`). Multi-GPU / multi-node:
`torchrun --nproc_per_node N training/train.py --config ...`. Continue an interrupted run: add
`--resume` (same config and run.out_dir).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from cli.main import main as segmenter

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = ["--debug"] if "--debug" in argv else []  # a top-level option of `segmenter`
    return segmenter([*debug, "train", *[a for a in argv if a != "--debug"]])


if __name__ == "__main__":
    sys.exit(main())
