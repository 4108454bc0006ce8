"""Training survives interruption: a signal at any iteration saves the state and exits 75, and
the resumed run ends with the weights of a run that was never interrupted, bit for bit."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model import load_segmenter
from testkit.ports import free_port
from testkit.tiny_training import tiny_cfg
from training.config import save_config
from training.data.synthetic import write_dataset
from training.saved_states import newest_state
from training.stop_signals import EXIT_INTERRUPTED
from training.trainer import train

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 120  # ~2 s of training: long enough to be interrupted anywhere in its first half


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 16 batches an epoch, so loader workers are not restarted every other iteration
    return write_dataset(tmp_path_factory.mktemp("data"), train=64, val=2, size=64, seed=5)


def long_cfg(root, out, **extra):
    # Evaluations inside the run, so a signal can also land in or right before one.
    base = {"run.iterations": ITERATIONS, "run.eval_every": 40, "run.checkpoint_every": 0,
            "run.checkpoint_minutes": 0}
    return tiny_cfg(root, out, **{**base, **extra})


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The weights of the uninterrupted run."""
    out = tmp_path_factory.mktemp("straight")
    train(long_cfg(data, out))
    return weights(out / "last")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_segmenter(folder).state_dict()


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def logged_iterations(path: Path) -> list[int]:
    """Iterations of the loss records (a line still being written is left out)."""
    found = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in record:
            found.append(record["iteration"])
    return found


def same_threads_env() -> dict[str, str]:
    # Bit-equality across processes needs the same number of threads as this one (summation order).
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONUNBUFFERED": "1"}


def signal_when_logged(command: list[str], log: Path, iteration: int, sig: signal.Signals, group: bool = False,
                       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Start `command`, send `sig` once `log` records `iteration`, and wait for the process to end."""
    proc = subprocess.Popen(command, cwd=REPO, env=env or same_threads_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=group)
    deadline = time.monotonic() + 180
    while not any(i >= iteration for i in logged_iterations(log)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the run ended (or hung) before iteration {iteration}: rc {proc.returncode}\n{err[-3000:]}")
        time.sleep(0.005)  # polling the log: the condition, not the delay, is what the test waits for
    if group:  # as a terminal's Ctrl-C or SLURM reaches every process of the job, loader workers too
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name)
def test_a_signal_at_a_random_iteration_saves_and_the_resumed_run_is_bit_equal(sig, data, straight, tmp_path):
    at = random.randint(5, ITERATIONS // 2)
    print(f"signalling at iteration {at} or just after")  # shown if the test fails
    out = tmp_path / "run"
    # SIGINT goes to the whole process group with two loader workers, as a terminal's Ctrl-C does.
    workers = 2 if sig == signal.SIGINT else 0
    cfg = long_cfg(data, out, **{"data.workers": workers})
    config = tmp_path / "run.yaml"
    save_config(cfg, config)
    stopped = signal_when_logged([sys.executable, "training/train.py", "--config", str(config)],
                                 out / "metrics.jsonl", at, sig, group=sig == signal.SIGINT)

    assert stopped.returncode == EXIT_INTERRUPTED, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    match = re.search(rf"stopped by {sig.name} after iteration (\d+) of {ITERATIONS}; the state is saved in "
                      rf"{re.escape(str(out / 'last'))}", stopped.stderr)
    assert match, stopped.stderr[-3000:]
    iteration = int(match.group(1))
    assert at <= iteration < ITERATIONS, f"signalled at iteration {at}"
    saved, skipped = newest_state(out)
    assert saved.folder == out / "last" and saved.iteration == iteration and not skipped

    if sig == signal.SIGINT:  # the command the message gives is the one that works
        command = shlex.split(re.search(r"continue with: (.*)", stopped.stderr).group(1))
        assert command[:2] == ["python", "training/train.py"] and "--resume" in command
        resumed = subprocess.run([sys.executable, *command[1:]], cwd=REPO, env=same_threads_env(),
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resuming {out} from iteration {iteration} of {ITERATIONS}" in resumed.stdout
    else:
        train(cfg, resume=True)
    assert_same_weights(straight, weights(out / "last"))
    assert logged_iterations(out / "metrics.jsonl") == list(range(1, ITERATIONS + 1))


def test_a_second_ctrl_c_aborts_at_once(tmp_path, monkeypatch, capsys):
    from cli.main import main
    from training.stop_signals import StopSignals, TrainingAborted

    previous = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGUSR1)  # a scheduler's second notice changes nothing
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(TrainingAborted, match="second Ctrl-C"):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous

    def aborted(*args, **kwargs):
        raise TrainingAborted("aborted by a second Ctrl-C; nothing was saved after the newest checkpoint")

    monkeypatch.setattr("training.trainer.train", aborted)
    config = tmp_path / "c.yaml"
    save_config(tiny_cfg(tmp_path, tmp_path / "run"), config)
    assert main(["train", "--config", str(config)]) == 130
    err = capsys.readouterr().err
    assert "aborted by a second Ctrl-C" in err and "Traceback" not in err


def test_sigkill_while_writing_a_checkpoint_leaves_the_previous_one(data, tmp_path):
    cfg = tiny_cfg(data, tmp_path / "run", **{"run.iterations": 9, "run.eval_every": 9, "run.checkpoint_every": 3,
                                              "run.checkpoint_minutes": 0})
    config = tmp_path / "run.yaml"
    save_config(cfg, config)
    # The second checkpoint's weights file is half written when the process is killed.
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO)!r})
import model.checkpoints.folder as folder
real, calls = folder.save_file, []
def dying(state, path, metadata=None):
    calls.append(path)
    if len(calls) == 2:
        open(path, "wb").write(b"half a safetensors file")
        os.kill(os.getpid(), signal.SIGKILL)
    real(state, path, metadata=metadata)
folder.save_file = dying
from cli.main import main
main(["train", "--config", {str(config)!r}])
"""
    killed = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=same_threads_env(), capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert [p.name for p in (tmp_path / "run").glob(".last.*")]  # the torn write is there...
    saved, skipped = newest_state(tmp_path / "run")
    assert saved.folder == tmp_path / "run" / "last" and saved.iteration == 3 and not skipped
    load_segmenter(saved.folder)  # ...and the previous checkpoint loads

    reference = tiny_cfg(data, tmp_path / "straight", **{"run.iterations": 9, "run.eval_every": 9})
    train(reference)
    train(cfg, resume=True)
    assert not list((tmp_path / "run").glob(".last.*"))  # cleared on resume
    assert_same_weights(weights(tmp_path / "straight" / "last"), weights(tmp_path / "run" / "last"))


def test_a_crash_between_the_two_renames_resumes_from_checkpoints(data, tmp_path, monkeypatch):
    """The instant `last/` has moved to checkpoints/ and the new one is not yet in place."""
    import model.checkpoints.folder as folder

    extra = {"run.iterations": 6, "run.eval_every": 6, "run.checkpoint_every": 2, "run.checkpoint_minutes": 0}
    cfg = tiny_cfg(data, tmp_path / "run", **extra)
    real_replace, moves = os.replace, []

    class CrashingOs:  # os, but the rename of the new folder into place fails once
        def __getattr__(self, name):
            return getattr(os, name)

        def replace(self, src, dst):
            moves.append(dst)
            if len(moves) == 3:  # 1: first save's folder; 2: last/ -> checkpoints/; 3: new folder -> last/
                raise OSError("killed between the renames")
            real_replace(src, dst)

    monkeypatch.setattr(folder, "os", CrashingOs())
    with pytest.raises(OSError, match="between the renames"):
        train(cfg)
    monkeypatch.undo()
    assert not (tmp_path / "run" / "last").exists()
    saved, _ = newest_state(tmp_path / "run")
    assert saved.folder.name == "iter_0000002"
    train(cfg, resume=True)
    train(tiny_cfg(data, tmp_path / "straight", **{**extra, "run.checkpoint_every": 0}))
    assert_same_weights(weights(tmp_path / "straight" / "last"), weights(tmp_path / "run" / "last"))



def test_torchrun_two_processes_stop_together_on_sigterm(data, tmp_path):
    iterations = 60

    def torchrun(name: str, *extra: str) -> list[str]:
        cfg = tiny_cfg(data, tmp_path / name, **{"run.iterations": iterations, "run.eval_every": iterations,
                                                 "run.checkpoint_every": 0, "run.checkpoint_minutes": 0})
        save_config(cfg, tmp_path / f"{name}.yaml")
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "training/train.py", "--config", str(tmp_path / f"{name}.yaml"), *extra]

    env = {**same_threads_env(), "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(torchrun("straight"), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-3000:]

    at = random.randint(3, iterations // 3)
    print(f"signalling at iteration {at} or just after")
    # SIGTERM to torchrun, as Kubernetes or SLURM sends it: torchrun passes it to both workers.
    stopped = signal_when_logged(torchrun("run"), tmp_path / "run" / "metrics.jsonl", at, signal.SIGTERM, env=env)
    match = re.search(rf"stopped by SIGTERM after iteration (\d+) of {iterations}", stopped.stderr)
    assert match, stopped.stderr[-3000:]
    assert stopped.stderr.count("stopped by") == 1  # rank 0 alone reports, and writes
    saved, skipped = newest_state(tmp_path / "run")
    assert saved.iteration == int(match.group(1)) and saved.state["world_size"] == 2 and not skipped
    assert not list((tmp_path / "run").glob(".last.*")) and not (tmp_path / "run" / "checkpoints").exists()

    resumed = subprocess.run(torchrun("run", "--resume"), cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(weights(tmp_path / "straight" / "last"), weights(tmp_path / "run" / "last"))
