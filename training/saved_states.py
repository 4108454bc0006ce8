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
            return SavedState(folder, load_state(folder)), skipped
        except Exception as exc:  # a torn or foreign file: say so, look further back
            skipped.append(f"{folder}: {STATE_FILE} unreadable ({type(exc).__name__}: {exc})")
    return None, skipped


def remove_unfinished_writes(out: Path) -> list[Path]:
    """Delete the temporary folders of checkpoint writes a crash interrupted; returns them."""
    removed = [p for p in out.iterdir() if p.is_dir() and _UNFINISHED.match(p.name)] if out.is_dir() else []
    for p in removed:
        shutil.rmtree(p)
    return removed


def set_aside_unreadable_last(out: Path) -> Path | None:
    """Rename a `last/` that `newest_state` skipped to `last.unreadable-N` (kept, not deleted)."""
    last = out / LAST
    if not last.exists():
        return None
    n = 1
    while (aside := out / f"{LAST}.unreadable-{n}").exists():
        n += 1
    last.rename(aside)
    return aside


def save_state(net: Segmenter, out: Path, state: bytes, previous_iteration: int | None, keep: int) -> Path:
    """Write `net` + `state` as the new `last/`; keep the `keep - 1` previous states, prune older ones."""
    last = out / LAST
    previous = history_folder(out, previous_iteration) if last.exists() and previous_iteration is not None else None
    if previous is not None and previous.exists():  # an older copy of the very state `last` holds
        shutil.rmtree(previous)
    save_checkpoint(net, last, extra_files={STATE_FILE: state}, previous_to=previous)
    for _, folder in _history(out)[max(keep - 1, 0):]:
        shutil.rmtree(folder)
    return last
