"""A run folder (`run.out_dir`) before training starts: new, or resumed with the same config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import TrainConfig, load_config
from training.state import STATE_FILE, load_state


def check_run_folder(cfg: TrainConfig, out: Path, resume: bool, allow_config_change: bool) -> int | None:
    """Before any data is read: the iteration a resumed run continues from (None for a new run).

    A new run refuses a folder that holds one (nothing is overwritten); a resumed run needs its
    saved state, and the same config unless `allow_config_change`.
    """
    saved = out / "last" / STATE_FILE
    if not resume:
        if saved.is_file() or (out / "config.yaml").is_file():
            raise FileExistsError(f"{out} already holds a training run; continue it with --resume, or choose another "
                                  "run.out_dir")
        return None
    if not saved.is_file():
        raise FileNotFoundError(f"nothing to resume in {out}: {saved} does not exist (no checkpoint was saved yet); "
                                "start the run without --resume")
    if (out / "config.yaml").is_file():
        changes = config_changes(load_config(out / "config.yaml"), cfg)
        if changes and not allow_config_change:
            raise ValueError(f"the config differs from the one {out} was started with ({'; '.join(changes)}); "
                             "resume with the same config and overrides, or add --allow-config-change")
        if changes:
            print(f"resuming with a changed config: {'; '.join(changes)}")
    return int(load_state(out / "last")["iteration"])


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
