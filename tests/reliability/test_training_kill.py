"""`kill -9` during training, then `--resume`: the run ends exactly where an uninterrupted one does.

The kill lands right after the process announces its second evaluation — that is, while it
writes (or is about to write) the second checkpoint. Whichever state the folder is left in, it
must be a complete checkpoint, and resuming from it must reproduce the straight run's weights.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import torch

from model import load_segmenter
from testkit.tiny_training import tiny_cfg
from training.config import save_config
from training.data.synthetic import write_dataset
from training.saved_states import newest_state
from training.trainer import train

REPO = Path(__file__).resolve().parents[2]


def test_kill_9_then_resume_matches_the_uninterrupted_run(tmp_path):
    root = write_dataset(tmp_path / "data", train=8, val=2, size=64, seed=4)
    extra = {"run.iterations": 9, "run.eval_every": 3}
    train(tiny_cfg(root, tmp_path / "straight", **extra))

    config = tmp_path / "killed.yaml"
    save_config(tiny_cfg(root, tmp_path / "killed", **extra), config)
    command = [sys.executable, "training/train.py", "--config", str(config)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    evaluations = 0
    for line in process.stdout:  # tqdm.write announces each evaluation just before its checkpoint
        if line.startswith("iteration "):
            evaluations += 1
            if evaluations == 2:
                process.send_signal(signal.SIGKILL)
                break
    assert process.wait(timeout=60) == -signal.SIGKILL
    saved, skipped = newest_state(tmp_path / "killed")  # last/, or checkpoints/ if the kill fell between renames
    assert saved is not None and saved.iteration in (3, 6) and not skipped  # a whole checkpoint, never a torn one

    resumed = subprocess.run([*command, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight, killed = (load_segmenter(tmp_path / name / "last").state_dict() for name in ("straight", "killed"))
    for key in straight:
        assert torch.equal(straight[key], killed[key]), key
    logged = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert {r["iteration"] for r in logged if "loss" in r} == set(range(1, 10))  # no iteration's log lost
