"""`python -m export onnx|check|tensorrt|triton ...` == `segmenter export ...`."""

import argparse
import sys

from export.cli import add_parser

parser = argparse.ArgumentParser(prog="python -m export")
add_parser(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["export", *sys.argv[1:]])
sys.exit(int(args.func(args) or 0))
