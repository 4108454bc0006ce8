"""`segmenter <command> ...`: dispatches to the package that owns each command.

Each package exposes `add_parser(subparsers)` in its own `cli` module; this file only wires
them together, so `model/` never imports the packages built on it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> module that defines add_parser(subparsers) and sets `func` on its parser
COMMANDS = {
    "predict": "model.cli",
    "variants": "model.cli",
    "convert": "model.cli",
    "export": "export.cli",
    "train": "training.cli",
    "eval": "training.cli",
    "serve": "service.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segmenter", description="Segmenter: transformer semantic segmentation."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
