"""Experiment configs: one YAML per experiment, every value overridable as dotted `key=value`.

    cfg = load_config("training/configs/ade20k_seg_b_mask_16.yaml", ["optim.lr=5e-4", "run.iterations=1000"])

The defaults below are the paper's recipe (SGD momentum 0.9, weight decay 0, poly 0.9 down to
1e-5, stochastic depth 0.1, no dropout); a YAML file only states what differs. The resolved
config is saved as `config.yaml` in the run folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelSection:
    variant: str = "Seg-B-Mask/16"  # a name from model.list_variants()
    overrides: dict[str, Any] = field(default_factory=dict)  # SegmenterConfig fields, e.g. {depth: 4}
    pretrained: str | None = None  # timm tag or local .npz/.safetensors/.pth; None = random init


@dataclass
class DataSection:
    dataset: str = "ade20k"  # ade20k | pascal_context | cityscapes | custom
    root: str = "data/ade20k"
    crop_size: int = 512
    base_size: tuple[int, int] = (2048, 512)  # (long, short) sides of the ratio-resize scale
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    photometric: bool = True
    window_size: int | None = None  # evaluation window; default crop_size
    window_stride: int | None = None  # default window_size
    eval_short_side: int | None = 512  # test images resized so the short side is this (mmseg protocol)
    workers: int = 4


@dataclass
class OptimSection:
    name: str = "sgd"  # sgd (paper) | adamw (appendix)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "poly"  # poly | cosine
    poly_power: float = 0.9
    min_lr: float = 1e-5
    warmup_iterations: int = 0
    grad_clip: float | None = None


@dataclass
class RunSection:
    iterations: int = 160_000
    batch_size: int = 8  # global batch (split over processes, times accumulation steps)
    accumulation: int = 1
    amp: str = "none"  # none | bf16 | fp16
    seed: int = 0
    eval_every: int = 4000
    log_every: int = 50
    out_dir: str = "runs/experiment"
    device: str = "auto"  # auto | cpu | cuda
    tensorboard: bool = False


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, current: Any, key: str) -> Any:
    """Convert a parsed override to the type of the field it replaces."""
    if current is None or value is None:
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} expects true/false, got {value!r}")
        return value
    if isinstance(current, tuple):
        return tuple(value)
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, dict) and isinstance(value, dict):
        return value
    if not isinstance(value, type(current)):
        raise ValueError(f"{key} expects {type(current).__name__}, got {value!r}")
    return value


def _apply(section: Any, data: dict[str, Any], prefix: str) -> None:
    names = {f.name for f in dataclasses.fields(section)}
    for key, value in data.items():
        if key not in names:
            raise ValueError(f"unknown config key {prefix}{key}; known: {', '.join(sorted(names))}")
        current = getattr(section, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{prefix}{key} is a section; give it a mapping")
            _apply(current, value, f"{prefix}{key}.")
        else:
            setattr(section, key, _coerce(value, current, prefix + key))


def parse_override(text: str) -> dict[str, Any]:
    """'optim.lr=5e-4' -> {'optim': {'lr': 0.0005}} (values parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key=value (e.g. optim.lr=5e-4)")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    if isinstance(value, str):  # YAML reads 5e-4 as a string; numbers with exponents are common here
        try:
            value = float(value)
        except ValueError:
            pass
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    cfg = TrainConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}; configs live in training/configs/")
        _apply(cfg, yaml.safe_load(path.read_text()) or {}, "")
    for text in overrides:
        _apply(cfg, parse_override(text), "")
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    data = cfg.to_dict()
    data["data"]["base_size"] = list(data["data"]["base_size"])
    data["data"]["ratio_range"] = list(data["data"]["ratio_range"])
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
