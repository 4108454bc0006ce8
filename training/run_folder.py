"""A run folder (`run.out_dir`) before training starts: new, continued, started over or refused.

| the folder holds            | no flag             | --resume                   | --resume auto | --overwrite |
|-----------------------------|---------------------|----------------------------|---------------|-------------|
| nothing                     | new run             | error: nothing to resume   | new run       | new run     |
| config.yaml, no saved state | error naming the ways out | from iteration 0, same config | same  | new run |
| a saved state               | error naming the ways out | continue from it     | same          | new run     |

A resumed run needs the same config (unless `allow_config_change`); settings that change how
it runs, not what it computes (checkpoint schedule, loader workers, log interval), may differ.
Under a torchrun restart (TORCHELASTIC_RESTART_COUNT) or a SLURM requeue (SLURM_RESTART_COUNT)
no flag means `--resume auto`, so the same command line can be restarted as it is.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.config import TrainConfig, load_config
from training.saved_states import (
    HISTORY,
    LAST,
    SavedState,
    newest_state,
    recover_interrupted_writes,
    set_aside_newer_than,
)

Resume = Literal[False, True, "auto"]
RESTART_VARIABLES = ("TORCHELASTIC_RESTART_COUNT", "SLURM_RESTART_COUNT")
# What --overwrite deletes: the files a run writes, nothing else the folder may hold.
RUN_FILES = ("config.yaml", "metrics.jsonl", LAST, "best", HISTORY, "eval_classes.md", "confusion.png")
# Keys that change how a run runs, not what it computes: a resumed run may change them freely.
RUN_ONLY_KEYS = ("run.checkpoint_every", "run.checkpoint_minutes", "run.keep_checkpoints", "run.log_every",
                 "data.workers")


@dataclass
class RunStart:
    """What `train` does with the folder: continue from `saved` (None: iteration 0), and what to say."""

    saved: SavedState | None
    overwrite: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def iteration(self) -> int:
        return self.saved.iteration if self.saved else 0


def plan_run(cfg: TrainConfig, out: Path, resume: Resume, overwrite: bool = False,
             allow_config_change: bool = False) -> RunStart:
    """Decide, before any data is read, how the run starts; user mistakes raise with the way out.

    Reads the folder only: `prepare_folder` (on one process) acts on the decision.
    """
    if resume not in (False, True, "auto"):
        raise ValueError(f"resume must be false, true or 'auto', got {resume!r}")
    if overwrite and resume:
        raise ValueError("--overwrite starts the run over and --resume continues it: pass one of them")
    notes: list[str] = []
    restarts = {v: os.environ[v] for v in RESTART_VARIABLES if os.environ.get(v, "0") not in ("", "0")}
    if restarts and resume is not True:  # a restart continues what its first start began, --overwrite too
        resume, overwrite = "auto", False
        notes.append(f"restarted ({', '.join(f'{k}={v}' for k, v in restarts.items())}): resuming the saved "
                     "state if there is one, as --resume auto")
    saved, skipped = newest_state(out)
    notes += [f"skipped a saved state that does not read back: {line}" for line in skipped]
    has_config = (out / "config.yaml").is_file()
    if overwrite:
        if saved or has_config:
            notes.append(f"--overwrite: deleting the run in {out} and starting over")
        return RunStart(None, overwrite=True, notes=notes)
    if not resume:
        if saved:
            raise FileExistsError(
                f"{out} already holds a training run (state saved at iteration {saved.iteration} of "
                f"{cfg.run.iterations}); continue it with --resume, start it over with --overwrite, or choose "
                "another run.out_dir")
        if has_config:
            raise FileExistsError(
                f"{out} holds a run that stopped before saving any state (config.yaml, no checkpoint"
                + (f"; {'; '.join(skipped)}" if skipped else "") + "); start it over from iteration 0 with "
                "--resume (its config must match) or --overwrite, or choose another run.out_dir")
        return RunStart(None, notes=notes)
    if not saved and not has_config:
        if resume == "auto":
            return RunStart(None, notes=notes)
        raise FileNotFoundError(f"nothing to resume in {out}: no run was started there; start one without "
                                "--resume, or pass --resume auto to resume only when there is one")
    if has_config:
        _check_same_config(load_config(out / "config.yaml"), cfg, out, allow_config_change, notes)
    if saved is None:
        notes.append(f"{out} has no saved state (the run stopped before its first checkpoint): starting over "
                     "from iteration 0 with its config")
    return RunStart(saved, notes=notes)


def prepare_folder(out: Path, start: RunStart) -> list[str]:
    """Act on a plan (one process only): delete for --overwrite, undo interrupted writes, set aside
    the unreadable states newer than the one the run continues from. Returns what it did, to print."""
    if start.overwrite:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    return recover_interrupted_writes(out) + set_aside_newer_than(out, start.saved)


def _check_same_config(old: TrainConfig, new: TrainConfig, out: Path, allowed: bool, notes: list[str]) -> None:
    changes = config_changes(old, new)
    fixed = [c for c in changes if c.split(":", 1)[0] not in RUN_ONLY_KEYS]
    if fixed and not allowed:
        raise ValueError(f"the config differs from the one {out} was started with ({'; '.join(fixed)}); "
                         "resume with the same config and overrides, or add --allow-config-change")
    if changes:
        notes.append(f"resuming with a changed config: {'; '.join(changes)}")


def config_changes(old: TrainConfig, new: TrainConfig) -> list[str]:
    """`key: old -> new` for every value that differs between two configs."""
    def flat(data: dict, prefix: str = "") -> dict[str, Any]:
        items: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict) and key != "overrides":
                items.update(flat(value, f"{prefix}{key}."))
            else:
                items[prefix + key] = list(value) if isinstance(value, tuple) else value
        return items

    before, after = flat(old.to_dict()), flat(new.to_dict())
    return [f"{key}: {before[key]!r} -> {after[key]!r}" for key in before if before[key] != after[key]]
