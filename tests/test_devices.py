"""A device this machine lacks is a user error on every command that takes one: exit 2, one message
naming what was asked, what this machine has and what to pass instead (model/devices.py), never
CUDA's traceback. The machine is made CPU-only (or 1-GPU) by patching torch.cuda, so these run
the same on a GPU host; every check happens before a model would be placed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cli.main import main
from model import save_checkpoint
from tests.conftest import tiny_segmenter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("devices")
    save_checkpoint(tiny_segmenter(), folder / "ckpt")
    Image.new("RGB", (32, 32)).save(folder / "img.png")
    return folder


def _gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def _argv(command: str, device: str, files: Path, tmp_path: Path) -> list[str]:
    """`command` asking for `device`, as its user writes it."""
    if command == "predict":
        return ["predict", str(files / "img.png"), "--checkpoint", str(files / "ckpt"), "--out", str(tmp_path / "o"),
                "--device", device]
    if command == "eval":
        return ["eval", "--checkpoint", str(files / "ckpt"), "--dataset", "synthetic", "--data-root",
                str(tmp_path / "synthetic"), "--device", device]
    if command == "export check":
        return ["export", "check", "--export-dir", str(tmp_path / "export"), "--checkpoint", str(files / "ckpt"),
                "--device", device]
    if command == "train":
        return ["train", "--config", str(ROOT / "training/configs/demo.yaml"), f"run.device={device}",
                f"run.out_dir={tmp_path / 'run'}"]
    assert command == "serve"
    models = tmp_path / "models.yaml"
    models.write_text(f"models:\n  - {{name: a, checkpoint: {files / 'ckpt'}, device: '{device}'}}\n")
    return ["serve", "--models", str(models)]


def _fails_cleanly(capsys, monkeypatch, argv: list[str]) -> str:
    def serving(*args, **kwargs):
        raise AssertionError("the service started on a device this machine lacks")

    monkeypatch.setattr("uvicorn.run", serving)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


SPELLED = {"predict": "--device {}", "eval": "--device {}", "export check": "--device {}", "train": "run.device={}",
           "serve": "device: {}"}


@pytest.mark.parametrize("command", list(SPELLED))
def test_cuda_on_a_machine_without_one(command, files, tmp_path, capsys, monkeypatch):
    _gpus(monkeypatch, 0)
    err = _fails_cleanly(capsys, monkeypatch, _argv(command, "cuda", files, tmp_path))
    spelled = SPELLED[command]
    assert (f"{spelled.format('cuda')} asks for a CUDA GPU, but this machine has no CUDA device (available: cpu); "
            f"use {spelled.format('cpu')}") in err
    assert not (tmp_path / "synthetic").exists() and not (tmp_path / "run").exists()  # stopped before any work


@pytest.mark.parametrize("command", [c for c in SPELLED if c != "export check"])  # its --device has no index
def test_a_gpu_index_this_machine_lacks(command, files, tmp_path, capsys, monkeypatch):
    _gpus(monkeypatch, 1)
    err = _fails_cleanly(capsys, monkeypatch, _argv(command, "cuda:3", files, tmp_path))
    spelled = SPELLED[command]
    assert (f"{spelled.format('cuda:3')} asks for CUDA device 3, but this machine has 1 (cuda:0); "
            f"use {spelled.format('cuda:0')}") in err


@pytest.mark.parametrize("name", ["gpu", "mps", "cuda:x"])
def test_a_name_that_is_no_device(name, files, tmp_path, capsys, monkeypatch):
    err = _fails_cleanly(capsys, monkeypatch, _argv("predict", name, files, tmp_path))
    assert f"--device must be cpu, cuda or cuda:N, got '{name}'" in err


def test_check_device_on_a_gpu_host(monkeypatch):
    from model.devices import DeviceError, check_device

    _gpus(monkeypatch, 2)
    assert check_device("cuda:1") == "cuda:1" and check_device("cuda") == "cuda"
    assert check_device("auto", auto=True) == "cuda"
    _gpus(monkeypatch, 0)
    assert check_device("auto", auto=True) == "cpu"
    with pytest.raises(DeviceError, match="must be auto, cpu, cuda or cuda:N"):
        check_device("gpu", auto=True)


def test_out_of_gpu_memory_while_placing_a_model():
    from model.devices import DeviceError, placing

    with pytest.raises(DeviceError) as info, placing("cuda:0"):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
    message = str(info.value)
    assert message.startswith("--device cuda:0: out of GPU memory while loading the model (CUDA out of memory. "
                              "Tried to allocate 2.00 GiB)")
    assert "or --device cpu" in message
