"""The laptop-sized training config the training tests share: Seg-T-Mask/16 cut to 2 layers, 48-px crops."""

from __future__ import annotations

from pathlib import Path

from training.config import TrainConfig, load_config


def tiny_cfg(root: str | Path, out: str | Path, **extra) -> TrainConfig:
    """A config over the custom-layout dataset at `root`, writing to `out`; `extra`: dotted overrides."""
    overrides = {
        "model.variant": "Seg-T-Mask/16", "model.overrides": "{embed_dim: 64, depth: 2, num_heads: 1}",
        "data.dataset": "custom", "data.root": str(root), "data.crop_size": 48, "data.base_size": "[64, 64]",
        "data.workers": 0, "data.test_scale": "null", "optim.lr": 0.01, "run.batch_size": 4,
        "run.iterations": 6, "run.eval_every": 3, "run.log_every": 1, "run.out_dir": str(out), "run.device": "cpu",
    }
    overrides.update(extra)
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])
