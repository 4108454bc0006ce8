"""A run folder's saved states: the newest in `last/`, the K-1 before it in `checkpoints/iter_N/`.

    run.out_dir/
      last/                   newest state: weights + segmenter.json + train_state.pt
      checkpoints/iter_N/     the previous ones (run.keep_checkpoints - 1 of them), oldest pruned
      best/                   weights of the best evaluation (no training state)

Each save writes a new folder beside `last/` and renames it into place; the folder it replaces
is renamed into `checkpoints/` (renames, no copies). A crash or `kill -9` at any moment
therefore leaves a whole state in `last/` or, in the instant between the two renames, in
`checkpoints/`: `newest_state` looks in both, newest first, and skips anything it cannot read.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from model import Segmenter, save_checkpoint
from training.state import STATE_FILE, load_state

LAST = "last"
HISTORY = "checkpoints"
_ITER = re.compile(r"^iter_(\d+)$")
_UNFINISHED = re.compile(r"^\.(last|best)\.")  # save_checkpoint's temporary folders


@dataclass(frozen=True)
class SavedState:
    """One readable saved state: its folder and the contents of its train_state.pt."""

    folder: Path
    state: dict[str, Any]

    @property
    def iteration(self) -> int:
        return int(self.state["iteration"])


def history_folder(out: Path, iteration: int) -> Path:
    return out / HISTORY / f"iter_{iteration:07d}"


def _history(out: Path) -> list[tuple[int, Path]]:
    """(iteration, folder) of `checkpoints/iter_N`, newest first."""
    folder = out / HISTORY
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _ITER.match(p.name))] if folder.is_dir() else []
    return sorted(found, reverse=True)


def newest_state(out: Path) -> tuple[SavedState | None, list[str]]:
    """The newest state that reads back whole, and a line for each one skipped (why)."""
    skipped: list[str] = []
    for folder in [out / LAST, *(p for _, p in _history(out))]:
        if not folder.is_dir():
            continue
        missing = [n for n in ("segmenter.json", "model.safetensors", STATE_FILE) if not (folder / n).is_file()]
        if missing:
            skipped.append(f"{folder}: {', '.join(missing)} missing")
            continue
        try:
            with safe_open(folder / "model.safetensors", framework="pt") as weights:  # the header only
                weights.keys()
            return SavedState(folder, load_state(folder)), skipped
        except Exception as exc:  # a torn or foreign file: say so, look further back
            skipped.append(f"{folder}: unreadable ({type(exc).__name__}: {exc})")
    return None, skipped


def recover_interrupted_writes(out: Path) -> list[str]:
    """Undo what a crash inside `save_checkpoint` left: a temporary folder is deleted; a replaced
    folder (`.best.old`) whose replacement never arrived is renamed back. Returns what was done."""
    done = []
    for p in sorted(out.iterdir()) if out.is_dir() else []:
        if not (p.is_dir() and _UNFINISHED.match(p.name)):
            continue
        target = out / p.name.split(".")[1]
        if p.name.endswith(".old") and not target.exists():
            p.rename(target)
            done.append(f"restored {target} from {p.name}, where a crash left it")
        else:
            shutil.rmtree(p)
            done.append(f"removed {p.name}, a checkpoint write a crash left unfinished")
    return done


def set_aside(folder: Path) -> Path:
    """Rename a saved state that does not read back to `NAME.unreadable-N`: kept, never pruned."""
    n = 1
    while (aside := folder.with_name(f"{folder.name}.unreadable-{n}")).exists():
        n += 1
    folder.rename(aside)
    return aside


def set_aside_newer_than(out: Path, start: SavedState | None) -> list[str]:
    """Before a run continues from `start` (None: iteration 0), set aside the states that would
    otherwise shadow it: an unreadable `last/`, and history at or after its iteration."""
    iteration = start.iteration if start else 0
    stale = [folder for it, folder in _history(out) if it >= iteration and (start is None or folder != start.folder)]
    if (out / LAST).exists() and (start is None or start.folder != out / LAST):
        stale.insert(0, out / LAST)
    return [f"{folder} does not read back; kept as {set_aside(folder)}" for folder in stale]


def save_state(net: Segmenter, out: Path, state: bytes, iteration: int, previous_iteration: int | None,
               keep: int) -> Path:
    """Write `net` + `state` (after `iteration` steps) as the new `last/`; the `last/` it replaces
    joins the history unless it holds the same iteration (re-saved with its evaluation); the
    history is pruned to the `keep - 1` newest."""
    last = out / LAST
    previous = None
    if last.exists() and previous_iteration is not None and previous_iteration != iteration:
        previous = history_folder(out, previous_iteration)
        if previous.exists():  # an older copy of the very state `last` holds
            shutil.rmtree(previous)
    save_checkpoint(net, last, extra_files={STATE_FILE: state}, previous_to=previous)
    for _, folder in _history(out)[max(keep - 1, 0):]:
        shutil.rmtree(folder)
    return last
