"""What a newcomer reads first holds: the install size and the CPU-only variant are on the first
screen, `make serve` installs the package without the development tools, and HOST/PORT work
(issue 27, item 6)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(*args: str, venv: Path) -> str:
    """The commands `make` would run, for a .venv that does not exist yet (a fresh machine)."""
    result = subprocess.run(["make", "-n", *args, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return result.stdout


def test_make_serve_on_a_fresh_machine_installs_the_runtime_only(tmp_path):
    commands = dry_run("serve", venv=tmp_path / "venv")
    assert "pip install --quiet -e ." in commands and ".[dev]" not in commands
    assert CPU_INDEX not in commands
    assert "--host 127.0.0.1 --port 8000" in commands


def test_cpu_host_and_port(tmp_path):
    commands = dry_run("serve", "CPU=1", "HOST=0.0.0.0", "PORT=9001", venv=tmp_path / "venv")
    torch_line = next(line for line in commands.splitlines() if "torch==" in line)
    assert torch_line.rstrip().endswith(CPU_INDEX)
    assert "--host 0.0.0.0 --port 9001" in commands


def test_make_test_installs_the_development_tools(tmp_path):
    assert "-e '.[dev]'" in dry_run("test", venv=tmp_path / "venv")


def test_the_first_screen_states_the_size_the_cpu_variant_host_and_port():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:12])
    for needed in ("make serve", "make test", "GB", "make serve CPU=1", "HOST=", "PORT="):
        assert needed in first_screen, f"README's first screen does not mention {needed!r}"
