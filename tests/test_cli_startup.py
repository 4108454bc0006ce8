"""`segmenter` starts fast: --version, --help and a mistyped flag answer in a fraction of a second,
because no command module imports torch (seconds, ~1 GB) before its command runs; and output
to a reader that went away (`segmenter variants | head -1`) ends quietly, as Unix tools do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "numpy", "cv2", "PIL", "onnx", "onnxruntime", "openvino", "fastapi", "uvicorn", "ray")


def _fastest_run(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    """The best wall time of three runs (a shared machine's noise only ever adds time), and a run."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        times.append(time.perf_counter() - start)
    return min(times), proc


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["predict", "--help"], ["predict", "--bogus"]])
def test_answers_without_loading_the_model_code(args):
    seconds, proc = _fastest_run(*args)
    assert proc.returncode == (2 if "--bogus" in args else 0), proc.stderr
    assert seconds < 1.0, f"segmenter {' '.join(args)} took {seconds:.2f} s (importing torch takes seconds)"


def test_building_every_parser_imports_no_heavy_package():
    # In a fresh interpreter: this one has torch loaded already. Every subcommand's help is
    # formatted too, so a default or a help text that needs model code would show here.
    code = ("import sys; from cli.main import build_parser; import argparse\n"
            "parser = build_parser()\n"
            "def walk(p):\n"
            "    p.format_help()\n"
            "    for a in p._actions:\n"
            "        if isinstance(a, argparse._SubParsersAction):\n"
            "            for sub in a.choices.values(): walk(sub)\n"
            "walk(parser)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_predict_help_lists_every_output():
    # jobs/cli.py writes the output names out instead of importing model.outputs (numpy, OpenCV).
    import argparse

    from jobs.cli import add_parser
    from model.outputs import OUTPUTS

    commands = argparse.ArgumentParser().add_subparsers()
    add_parser(commands)
    predict = commands.choices["predict"]
    output_help = next(a.help for a in predict._actions if "--output" in a.option_strings)
    assert f"from {', '.join(OUTPUTS)} (default" in output_help


@pytest.mark.parametrize("module, command", [("jobs.cli", "predict"), ("training.cli", "eval")])
def test_blend_choices_are_the_libraries(module, command):
    # --blend's choices are written out too (model.inference.BLENDS lives beside torch code).
    import argparse
    import importlib

    from model.inference import BLENDS

    commands = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).add_parser(commands)
    blend = next(a for a in commands.choices[command]._actions if "--blend" in a.option_strings)
    assert tuple(blend.choices) == BLENDS and blend.default == "uniform"


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_closed_pipe_ends_quietly(unbuffered):
    # The reader is gone before the first byte is written (as after `head -1` has its line): every
    # write fails, whether Python writes each line (PYTHONUNBUFFERED) or all of them at the end.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    try:
        proc = subprocess.run([sys.executable, "-m", "cli", "variants"], cwd=ROOT, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode in (0, 141, -signal.SIGPIPE), proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize("package", ["model", "model.inference", "export"])
def test_every_public_name_still_imports(package):
    # These packages import their names on first use (PEP 562) so that the parsers stay light; a name
    # added to __all__ but not to the package's map of homes would fail only when someone uses it.
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing and set(module.__all__) <= set(dir(module))


def test_a_broken_pipe_that_is_not_stdout_is_reported(monkeypatch, capsys):
    """Only our reader going away ends quietly: a socket or subprocess pipe that breaks inside a
    command is an error with its message (exit 2), not a silent 141."""
    import argparse

    from cli import main as cli_main

    def command(_args):
        raise BrokenPipeError(32, "Broken pipe (the weights server hung up)")

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command, debug=False)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    assert cli_main.main([]) == 2
    assert "the weights server hung up" in capsys.readouterr().err


def test_submodules_are_attributes_after_a_plain_import():
    """`import model.inference` then `model.inference.sliding_window`, as before the names became
    lazy; and dir() lists the public modules. In a fresh interpreter: nothing imported yet."""
    code = ("import model, model.inference\n"
            "assert model.inference.sliding_window.merge_windows is model.inference.merge_windows\n"
            "assert model.inference.window_logits.LogitsGrid\n"
            "assert 'zoo' in dir(model) and 'window_plan' in dir(model.inference)\n"
            "assert model.zoo.ZooError is model.ZooError\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
