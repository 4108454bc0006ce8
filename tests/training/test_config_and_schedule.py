"""Configs: YAML + dotted overrides with type checks; learning-rate schedules' values."""

from __future__ import annotations

import math

import pytest
import yaml

from training.config import load_config, save_config
from training.schedule import cosine_lr, poly_lr


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {variant: Seg-B/32}\noptim: {lr: 0.01}\nrun: {iterations: 80000}\n")
    cfg = load_config(path, ["optim.lr=5e-4", "data.ratio_range=[0.5, 1.5]", "run.amp=bf16",
                             "model.overrides={depth: 2}"])
    assert cfg.model.variant == "Seg-B/32" and cfg.run.iterations == 80000
    assert cfg.optim.lr == 5e-4 and cfg.data.ratio_range == (0.5, 1.5) and cfg.run.amp == "bf16"
    assert cfg.model.overrides == {"depth": 2}
    assert cfg.optim.momentum == 0.9 and cfg.optim.weight_decay == 0.0  # the paper's recipe by default
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize("override,message", [
    ("optim.lrr=1", "unknown config key optim.lrr"),
    ("run.iterations=many", "run.iterations expects int"),
    ("optim", "not key=value"),
    ("data.photometric=3", "expects true/false"),
    ("run.amp=bfloat16", "run.amp must be one of none, bf16, fp16, got 'bfloat16'"),
    ("optim.name=adam", "optim.name must be one of sgd, adamw"),
    ("optim.schedule=step", "optim.schedule must be one of poly, cosine"),
    ("run.device=gpu", "run.device must be auto, cpu, cuda or cuda:N"),
    ("data.dataset=ade", "data.dataset must be one of ade20k"),
    ("model.variant=Seg-X/16", "model.variant: unknown Segmenter variant"),
    ("model.overrides={dpeth: 2}", "unknown config key model.overrides.dpeth"),
    ("model.overrides={depth: 0.5}", "depth must be int"),
    ("run.batch_size=0", "run.batch_size must be > 0"),
    ("data.window_stride=600", "data.window_stride must be in 1..512"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config file"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted(Path("training/configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)
        assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_poly_schedule_values():
    assert poly_lr(0, 100, 1e-3) == pytest.approx(1e-3)
    assert poly_lr(50, 100, 1e-3) == pytest.approx((1e-3 - 1e-5) * 0.5**0.9 + 1e-5)
    assert poly_lr(100, 100, 1e-3) == pytest.approx(1e-5)
    assert poly_lr(4, 100, 1e-3, warmup=10) == pytest.approx(5e-4)  # linear warmup to the base lr
    values = [poly_lr(i, 100, 1e-3) for i in range(101)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_cosine_schedule_values():
    assert cosine_lr(10, 110, 1e-3, min_lr=0.0, warmup=10) == pytest.approx(1e-3)
    assert cosine_lr(60, 110, 1e-3, min_lr=0.0, warmup=10) == pytest.approx(0.5e-3)
    assert cosine_lr(110, 110, 1e-3, min_lr=1e-6, warmup=10) == pytest.approx(1e-6)
    assert not math.isnan(cosine_lr(0, 1, 1e-3))


def test_a_config_typo_is_refused_before_any_data_is_read(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "exp.yaml"
    config.write_text(f"data: {{dataset: custom, root: {tmp_path / 'no-data-here'}}}\n")
    proc = subprocess.run([sys.executable, "training/train.py", "--config", str(config), "run.amp=bfloat16"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "run.amp must be one of none, bf16, fp16, got 'bfloat16'" in proc.stderr
    assert "no-data-here" not in proc.stderr and "Traceback" not in proc.stderr  # refused before the data


def test_cuda_n_is_honoured_and_missing_cuda_is_an_error(monkeypatch):
    import torch

    from training.distributed import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="this machine has no CUDA device"):
        resolve_device("cuda:1", 0, 1)
    assert resolve_device("auto", 0, 1) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1", 0, 1) == torch.device("cuda", 1)
    assert resolve_device("cuda", 1, 2) == torch.device("cuda", 1)  # torchrun: cuda:LOCAL_RANK
    with pytest.raises(ValueError, match=r"asks for CUDA device 2, but this machine has 2 \(cuda:0, cuda:1\)"):
        resolve_device("cuda:2", 0, 1)
    with pytest.raises(ValueError, match="names one GPU"):
        resolve_device("cuda:1", 0, 2)
    with pytest.raises(ValueError, match=r"process 3 of this host takes cuda:3, but the host has 2 GPU"):
        resolve_device("cuda", 3, 4)  # more torchrun processes than GPUs
