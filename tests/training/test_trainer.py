"""Training runs end to end, resumes exactly, survives a crash while saving, and runs under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model import load_segmenter
from testkit.tiny_training import tiny_cfg
from training.data.synthetic import write_dataset
from training.state import STATE_FILE
from training.trainer import train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("synthetic"), train=8, val=2, size=64, seed=3)


def weights(folder):
    return load_segmenter(folder).state_dict()


def test_resume_continues_exactly(tmp_path, synthetic_root):
    # drop_path 0.1 (the default) uses the RNG: resuming must restore it too
    straight = train(tiny_cfg(synthetic_root, tmp_path / "straight"))
    train(tiny_cfg(synthetic_root, tmp_path / "resumed"), stop_at=3)
    assert json.loads((tmp_path / "resumed" / "last" / "segmenter.json").read_text())["metadata"]["provenance"][
        "iteration"] == 3
    resumed = train(tiny_cfg(synthetic_root, tmp_path / "resumed"), resume=True)
    a, b = weights(tmp_path / "straight" / "last"), weights(tmp_path / "resumed" / "last")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight["miou"] == resumed["miou"]
    logged = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in logged if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "straight" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "straight" / "confusion.png").is_file()


def test_resume_with_accumulation_and_adamw(tmp_path, synthetic_root):
    extra = {"run.accumulation": 2, "optim.name": "adamw", "optim.schedule": "cosine", "optim.lr": 1e-3}
    train(tiny_cfg(synthetic_root, tmp_path / "a", **extra))
    train(tiny_cfg(synthetic_root, tmp_path / "b", **extra), stop_at=3)
    train(tiny_cfg(synthetic_root, tmp_path / "b", **extra), resume=True)
    a, b = weights(tmp_path / "a" / "last"), weights(tmp_path / "b" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, synthetic_root, monkeypatch):
    cfg = tiny_cfg(synthetic_root, tmp_path / "run")
    train(cfg, stop_at=3)
    before = weights(tmp_path / "run" / "last")

    def crash(*args, **kwargs):
        raise OSError("killed while writing")

    monkeypatch.setattr("model.checkpoints.folder.save_file", crash)
    with pytest.raises(OSError, match="killed while writing"):
        train(cfg, resume=True)
    monkeypatch.undo()
    after = weights(tmp_path / "run" / "last")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "run" / "last" / STATE_FILE).is_file()
    train(cfg, resume=True)  # and the run can still be finished from it


def test_resume_without_checkpoint_is_explained(tmp_path, synthetic_root):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_cfg(synthetic_root, tmp_path / "none"), resume=True)


def test_batch_size_must_split_over_processes(tmp_path, synthetic_root):
    with pytest.raises(ValueError, match="multiple of processes"):
        train(tiny_cfg(synthetic_root, tmp_path / "x", **{"run.batch_size": 3, "run.accumulation": 2}))


def test_two_process_torchrun_on_cpu(tmp_path, synthetic_root):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(f"""
model: {{variant: Seg-T-Mask/16, overrides: {{embed_dim: 64, depth: 2, num_heads: 1}}}}
data: {{dataset: custom, root: {synthetic_root}, crop_size: 48, base_size: [64, 64], workers: 0}}
run: {{iterations: 4, batch_size: 4, eval_every: 4, log_every: 2, out_dir: {tmp_path / 'ddp'}, device: cpu}}
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         str(REPO / "training" / "train.py"), "--config", str(cfg_path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mIoU" in proc.stdout
    net = load_segmenter(tmp_path / "ddp" / "last")
    assert net.metadata.class_names[1] == "stripes"
    losses = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in losses if "loss" in r] == [2, 4]


def test_resume_says_what_it_does_and_refuses_a_changed_config(tmp_path, synthetic_root, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(synthetic_root, out), stop_at=3)
    with pytest.raises(FileExistsError, match=r"already holds a training run \(state saved at iteration 3 of 6\); "
                       "continue it with --resume, start it over with --overwrite"):
        train(tiny_cfg(synthetic_root, out))  # a new run never overwrites one
    with pytest.raises(ValueError, match=r"run.iterations: 6 -> 300.*--allow-config-change"):
        train(tiny_cfg(synthetic_root, out, **{"run.iterations": 300}), resume=True)
    capsys.readouterr()
    train(tiny_cfg(synthetic_root, out), resume=True)
    assert f"resuming {out} from iteration 3 of 6" in capsys.readouterr().out
    assert train(tiny_cfg(synthetic_root, out), resume=True) == {}
    assert f"{out} already reached iteration 6 of 6; nothing to do" in capsys.readouterr().out
