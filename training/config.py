"""Experiment configs: one YAML per experiment, every value overridable as dotted `key=value`.

    cfg = load_config("training/configs/ade20k_seg_b_mask_16.yaml", ["optim.lr=5e-4", "run.iterations=1000"])

The defaults below are the paper's recipe (SGD momentum 0.9, weight decay 0, poly 0.9 down to
1e-5, stochastic depth 0.1 in the encoder, dropout 0.1 in the mask transformer as the authors'
code); a YAML file only states what differs. The resolved config is saved as `config.yaml` in
the run folder.

Everything is checked when the config is read, before any dataset is built: unknown keys,
types, enumerations (`run.amp`, `optim.name`, `optim.schedule`, `run.device`, `data.dataset`),
the variant and its `model.overrides`, and ranges. Each problem is a ValueError naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from model import SegmenterConfig, get_variant, variant_config
from model.devices import parse_device
from training.data.layouts import DATASETS


@dataclass
class ModelSection:
    variant: str = "Seg-B-Mask/16"  # a name from model.list_variants()
    overrides: dict[str, Any] = field(default_factory=dict)  # SegmenterConfig fields, e.g. {depth: 4}
    pretrained: str | None = None  # timm tag or local .npz/.safetensors/.pth; None = random init


@dataclass
class DataSection:
    dataset: str = "ade20k"  # ade20k | pascal_context | cityscapes | custom | synthetic
    root: str = "data/ade20k"
    crop_size: int = 512
    base_size: tuple[int, int] = (2048, 512)  # (long, short) sides of the ratio-resize scale
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    photometric: bool = True
    window_size: int | None = None  # evaluation window; default crop_size
    window_stride: int | None = None  # default window_size
    # Keep-ratio scale (long, short) test images are resized into, up or down, for evaluation and
    # by every user of the checkpoint (it is saved in its metadata); null: images as they are.
    test_scale: tuple[int, int] | None = (2048, 512)
    workers: int = 4


@dataclass
class OptimSection:
    name: Literal["sgd", "adamw"] = "sgd"  # sgd (paper) | adamw (appendix)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["poly", "cosine"] = "poly"
    poly_power: float = 0.9
    min_lr: float = 1e-5
    warmup_iterations: int = 0
    grad_clip: float | None = None


@dataclass
class RunSection:
    iterations: int = 160_000
    batch_size: int = 8  # global batch (split over processes, times accumulation steps)
    accumulation: int = 1
    amp: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    eval_every: int = 4000
    # Saving the full state apart from evaluations, so a crash, kill or preemption loses little
    # (signals always save: training/stop_signals.py). 0 turns either off.
    checkpoint_every: int = 1000  # iterations
    checkpoint_minutes: float = 30.0  # wall clock
    keep_checkpoints: int = 2  # last/ plus this many - 1 earlier states in checkpoints/
    log_every: int = 50
    out_dir: str = "runs/experiment"
    device: str = "auto"  # auto (cuda if there is one) | cpu | cuda | cuda:N (one process only)


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
    hints = typing.get_type_hints(type(section))
    for key, value in data.items():
        if key not in names:
            raise ValueError(f"unknown config key {prefix}{key}; known: {', '.join(sorted(names))}")
        current = getattr(section, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{prefix}{key} is a section; give it a mapping")
            _apply(current, value, f"{prefix}{key}.")
            continue
        choices = typing.get_args(hints[key]) if typing.get_origin(hints[key]) is Literal else ()
        if choices and value not in choices:
            raise ValueError(f"{prefix}{key} must be one of {', '.join(map(str, choices))}, got {value!r}")
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
    """Read a YAML config, apply dotted overrides and validate the result (ValueError naming the key)."""
    cfg = TrainConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}; configs live in training/configs/")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{path} must be a mapping of sections (model, data, optim, run)")
        _apply(cfg, data or {}, "")
    for text in overrides:
        _apply(cfg, parse_override(text), "")
    validate(cfg)
    return cfg


_POSITIVE = {"data.crop_size": lambda c: c.data.crop_size, "optim.lr": lambda c: c.optim.lr,
             "run.iterations": lambda c: c.run.iterations, "run.batch_size": lambda c: c.run.batch_size,
             "run.accumulation": lambda c: c.run.accumulation, "run.eval_every": lambda c: c.run.eval_every,
             "run.log_every": lambda c: c.run.log_every, "run.keep_checkpoints": lambda c: c.run.keep_checkpoints}
_NON_NEGATIVE = {"run.checkpoint_every": lambda c: c.run.checkpoint_every,
                 "run.checkpoint_minutes": lambda c: c.run.checkpoint_minutes}


def validate(cfg: TrainConfig) -> None:
    """Values that types cannot check: names, devices, ranges, the architecture the config builds."""
    if cfg.data.dataset not in DATASETS:
        raise ValueError(f"data.dataset must be one of {', '.join(DATASETS)}, got {cfg.data.dataset!r}")
    parse_device(cfg.run.device, "run.device={}", auto=True)  # the name; the machine is checked when training starts
    for key, get in _POSITIVE.items():
        if not get(cfg) > 0:
            raise ValueError(f"{key} must be > 0, got {get(cfg)!r}")
    for key, get in _NON_NEGATIVE.items():
        if not get(cfg) >= 0:
            raise ValueError(f"{key} must be >= 0 (0 turns it off), got {get(cfg)!r}")
    if cfg.data.test_scale is not None and (len(cfg.data.test_scale) != 2 or min(cfg.data.test_scale) < 1):
        raise ValueError(f"data.test_scale must be [long, short] in pixels or null, got {list(cfg.data.test_scale)}")
    window = cfg.data.window_size or cfg.data.crop_size
    if cfg.data.window_stride is not None and not 0 < cfg.data.window_stride <= window:
        raise ValueError(f"data.window_stride must be in 1..{window} (the window), got {cfg.data.window_stride}")
    try:
        variant = get_variant(cfg.model.variant).name
    except KeyError as exc:
        raise ValueError(f"model.variant: {exc.args[0]}") from None
    fields = {f.name for f in dataclasses.fields(SegmenterConfig)}
    for key in cfg.model.overrides:
        if key not in fields or key in ("num_classes", "image_size"):
            settable = sorted(fields - {"num_classes", "image_size"})
            raise ValueError(f"unknown config key model.overrides.{key}; known: {', '.join(settable)} "
                             "(num_classes comes from the dataset, image_size from data.crop_size)")
    try:
        variant_config(variant, image_size=cfg.data.crop_size, **cfg.model.overrides)
    except ValueError as exc:
        raise ValueError(f"model.overrides: {exc}") from None


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    data = cfg.to_dict()
    data["data"]["base_size"] = list(data["data"]["base_size"])
    data["data"]["ratio_range"] = list(data["data"]["ratio_range"])
    if data["data"]["test_scale"] is not None:
        data["data"]["test_scale"] = list(data["data"]["test_scale"])
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
