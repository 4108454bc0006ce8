"""The run folder: no dead ends between --resume and a new run, saves on schedule, K states kept."""

from __future__ import annotations

import json

import pytest
import torch

from model import load_segmenter
from testkit.tiny_training import tiny_cfg
from training.config import load_config, save_config
from training.data.synthetic import write_dataset
from training.saved_states import newest_state
from training.state import STATE_FILE, load_state
from training.trainer import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), train=8, val=2, size=64, seed=6)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    train(tiny_cfg(data, out))
    return load_segmenter(out / "last").state_dict()


def same_weights(a, folder) -> bool:
    b = load_segmenter(folder).state_dict()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_a_folder_with_a_config_but_no_state_has_a_way_out(data, straight, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    save_config(tiny_cfg(data, out), out / "config.yaml")  # a run that died before its first checkpoint
    with pytest.raises(FileExistsError, match=r"stopped before saving any state .* start it over from iteration 0 "
                                              r"with --resume \(its config must match\) or --overwrite"):
        train(tiny_cfg(data, out))
    train(tiny_cfg(data, out), resume=True)  # the way out the message names
    assert "starting over from iteration 0 with its config" in capsys.readouterr().out
    assert same_weights(straight, out / "last")


def test_overwrite_starts_over_and_keeps_files_that_are_not_the_runs(data, straight, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out, **{"optim.lr": 0.05}), stop_at=3)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="pass one of them"):
        train(tiny_cfg(data, out), resume=True, overwrite=True)
    train(tiny_cfg(data, out), overwrite=True)
    assert "--overwrite: deleting the run" in capsys.readouterr().out
    assert same_weights(straight, out / "last")
    assert load_config(out / "config.yaml").optim.lr == 0.01
    assert (out / "notes.txt").read_text() == "mine"
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in logged if "loss" in r] == [1, 2, 3, 4, 5, 6]  # the old run's log is gone


def test_resume_auto_starts_or_continues(data, straight, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="nothing to resume .* --resume auto"):
        train(tiny_cfg(data, tmp_path / "typo"), resume=True)
    out = tmp_path / "run"
    train(tiny_cfg(data, out), resume="auto", stop_at=3)  # nothing there: a new run
    train(tiny_cfg(data, out), resume="auto")  # the same call again: continues it
    assert f"resuming {out} from iteration 3 of 6" in capsys.readouterr().out
    assert same_weights(straight, out / "last")


def test_a_resumed_run_moves_no_cursor_in_its_log(data, tmp_path, capsys):
    # Captured output is a log, not a terminal: the evaluation's bar, nested under the training bar,
    # came back up with an ANSI cursor-up there, which a log keeps as a stray "[A".
    out = tmp_path / "run"
    train(tiny_cfg(data, out), stop_at=3)
    capsys.readouterr()
    train(tiny_cfg(data, out), resume=True)
    log = "".join(capsys.readouterr())
    assert f"resuming {out} from iteration 3 of 6" in log and "iteration 6: mIoU" in log  # it did evaluate
    assert "\x1b[A" not in log


@pytest.mark.parametrize("variable", ["TORCHELASTIC_RESTART_COUNT", "SLURM_RESTART_COUNT"])
def test_a_restarted_job_resumes_without_the_flag(variable, data, straight, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out), stop_at=3)
    monkeypatch.setenv(variable, "1")
    train(tiny_cfg(data, out))  # the command line as first submitted
    printed = capsys.readouterr().out
    assert f"restarted ({variable}=1)" in printed and f"resuming {out} from iteration 3" in printed
    assert same_weights(straight, out / "last")


def test_schedule_settings_may_change_on_resume(data, straight, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out), stop_at=3)
    train(tiny_cfg(data, out, **{"run.checkpoint_every": 1, "run.keep_checkpoints": 5}), resume=True)
    assert "resuming with a changed config: run.checkpoint_every: 1000 -> 1" in capsys.readouterr().out
    assert same_weights(straight, out / "last")


class FakeClock:
    """Seconds that pass only when a training step runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def saved_iterations(out) -> list[int]:
    return sorted(load_state(p.parent)["iteration"] for p in out.glob("checkpoints/*/" + STATE_FILE))


def test_checkpoint_minutes_saves_on_the_clock_and_keeps_the_newest(data, monkeypatch, tmp_path):
    import training.trainer as trainer

    clock, real_step = FakeClock(), trainer.train_step

    def step_of_40_seconds(*args, **kwargs):
        clock.now += 40
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", step_of_40_seconds)
    out = tmp_path / "run"
    extra = {"run.iterations": 7, "run.eval_every": 7, "run.checkpoint_every": 0, "run.checkpoint_minutes": 1,
             "run.keep_checkpoints": 3}
    train(tiny_cfg(data, out, **extra), clock=clock)
    # Saves once 60 s have passed since the last one: after steps 2, 4, 6 (80 s each), then the
    # final evaluation at 7. Three kept: last/ (7) and the two before it.
    assert newest_state(out)[0].iteration == 7
    assert saved_iterations(out) == [4, 6]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter_0000004", "iter_0000006"]


def test_checkpoint_every_saves_on_iterations_and_a_stopped_clock_never(data, tmp_path):
    out = tmp_path / "run"
    extra = {"run.iterations": 7, "run.eval_every": 7, "run.checkpoint_every": 2, "run.checkpoint_minutes": 1,
             "run.keep_checkpoints": 10}
    train(tiny_cfg(data, out, **extra), clock=lambda: 0.0)
    assert saved_iterations(out) == [2, 4, 6] and newest_state(out)[0].iteration == 7


def test_keep_one_holds_no_history(data, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(data, out, **{"run.checkpoint_every": 1, "run.keep_checkpoints": 1}))
    assert saved_iterations(out) == [] and newest_state(out)[0].iteration == 6


def test_an_unreadable_newest_state_is_set_aside_and_the_one_before_used(data, straight, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out, **{"run.checkpoint_every": 1}), stop_at=4)
    (out / "last" / "model.safetensors").write_bytes(b"not safetensors")  # a disk that lied
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"iteration": 5, "lo')  # a line a crash cut short
    saved, skipped = newest_state(out)
    assert saved.iteration == 3 and saved.folder.name == "iter_0000003" and "unreadable" in skipped[0]
    train(tiny_cfg(data, out, **{"run.checkpoint_every": 1}), resume=True)
    printed = capsys.readouterr().out
    assert f"{out / 'last'} does not read back; kept as {out / 'last.unreadable-1'}" in printed
    assert f"resuming {out} from iteration 3 of 6 ({saved.folder})" in printed
    assert (out / "last.unreadable-1" / "model.safetensors").read_bytes() == b"not safetensors"  # nothing lost
    assert same_weights(straight, out / "last")
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in logged if "loss" in r] == [1, 2, 3, 4, 5, 6]


def test_a_best_checkpoint_a_crash_left_aside_is_restored(data, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out), stop_at=3)
    (out / "best").rename(out / ".best.old")  # the crash fell between save_checkpoint's two renames
    (out / ".last.x1y2z3").mkdir()  # and an unfinished write of last/
    train(tiny_cfg(data, out), resume=True)
    printed = capsys.readouterr().out
    assert "restored" in printed and "removed .last.x1y2z3" in printed
    assert (out / "best" / "model.safetensors").is_file() and not list(out.glob(".*"))


def test_overwrite_in_a_restarted_job_resumes_instead(data, straight, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    train(tiny_cfg(data, out), overwrite=True, stop_at=3)  # the first start
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    train(tiny_cfg(data, out), overwrite=True)  # the requeued script, as written
    assert f"resuming {out} from iteration 3 of 6" in capsys.readouterr().out
    assert same_weights(straight, out / "last")


def test_a_signal_before_an_evaluation_skips_it_and_resumes_exactly(data, straight, tmp_path, monkeypatch):
    import signal

    import training.trainer as trainer
    from training.stop_signals import TrainingInterrupted

    real_step, steps = trainer.train_step, []

    def step_then_sigterm(*args, **kwargs):
        steps.append(1)
        if len(steps) == 3:  # the step before the evaluation at iteration 3
            signal.raise_signal(signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", step_then_sigterm)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match=r"after iteration 3 of 6; .*evaluation at iteration 3 was skipped"):
        train(tiny_cfg(data, out))
    monkeypatch.undo()
    assert newest_state(out)[0].iteration == 3 and not (out / "best").exists()
    train(tiny_cfg(data, out), resume=True)
    assert same_weights(straight, out / "last")


def test_resume_reads_the_training_state_once(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny_cfg(data, out), stop_at=3)
    reads, real_load = [], torch.load

    def counting_load(f, *args, **kwargs):
        if str(f).endswith(STATE_FILE):
            reads.append(f)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    train(tiny_cfg(data, out), resume=True)
    assert len(reads) == 1  # optimizer state is as large as the weights: read it once (was twice)
