"""`segmenter <command> ...`: dispatches to the package that owns each command.

Each package built on `model/` exposes `add_parser(subparsers)` in its own `cli` module
(jobs/, training/, export/, service/); the commands that drive the model itself live here, in
cli/model_commands.py and cli/weights.py, since model/ holds no command-line code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command -> module that defines add_parser(subparsers) and sets `func` on its parser
COMMANDS = {
    "predict": "jobs.cli",
    "variants": "cli.model_commands",
    "convert": "cli.model_commands",
    "attention": "cli.model_commands",
    "weights": "cli.weights",
    "export": "export.cli",
    "train": "training.cli",
    "eval": "training.cli",
    "serve": "service.cli",
}


def build_parser() -> argparse.ArgumentParser:
    from model import __version__

    parser = argparse.ArgumentParser(
        prog="segmenter", description="Segmenter: transformer semantic segmentation."
    )
    parser.add_argument("--version", action="version", version=f"segmenter {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each module imports only argparse-level things at its top (torch, numpy, ... inside the
    # command functions): building this parser, `--help` and `--version` take a fraction of a second.
    for module_name in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user asked for something that cannot be done (a missing file, a bad
    config or checkpoint): a one-paragraph message, no traceback. Each names the problem and the fix."""
    from model import SegmenterError

    return OSError, ValueError, SegmenterError


# What a shell reports for a process that a closed pipe stopped (128 + SIGPIPE), as `yes | head` does.
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit: a reader that went away (`| head`) is handled below
        return code
    except BrokenPipeError as exc:
        if _reader_gone():
            return _stdout_closed()
        error: BaseException = exc  # another pipe broke (a socket, a subprocess): reported as any error
    except user_errors() as exc:
        error = exc
    except KeyboardInterrupt as exc:  # Ctrl-C: what a shell reports, no traceback (`segmenter train`
        if args.debug:                # stops cleanly on the first one; this is its second)
            raise
        print(f"\n{exc or 'interrupted'}", file=sys.stderr)
        return 130
    if args.debug:
        raise error
    print(f"error: {error}\n(run with `segmenter --debug ...` for the traceback)", file=sys.stderr)
    return 2


def _reader_gone() -> bool:
    """Whether our stdout is a pipe whose reader went away (not another pipe that broke): output
    that can no longer be flushed, or a pipe the kernel reports in error."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or a stdout without a descriptor
        return False


def _stdout_closed() -> int:
    """The reader of our output went away (`segmenter variants | head -1`): stop quietly, as Unix
    tools do. Python would still flush stdout at exit and print a second BrokenPipeError, so stdout
    now writes to /dev/null (the recipe of Python's `signal` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor (an in-process caller's)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
