"""Signals that stop a training run cleanly: SIGINT (Ctrl-C), SIGTERM and SIGUSR1.

Clusters announce the end of a job with a signal before they kill it: SLURM sends SIGTERM (or
the signal named by `--signal`, often SIGUSR1), Kubernetes sends SIGTERM and waits its grace
period, torchrun forwards SIGINT/SIGTERM to its workers and waits `--shutdown-timeout` (30 s).
The first such signal only *asks* the run to stop: the trainer finishes the step in progress,
saves the full state, and leaves with `TrainingInterrupted` (the CLI's exit code 75). A second
Ctrl-C aborts at once (`TrainingAborted`, exit code 130), saving nothing more.

    with StopSignals() as stop:
        for ...:
            if stop.requested: ...
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry". The run stopped on
# a signal with its state saved: the same command with --resume (or --resume auto) continues it.
EXIT_INTERRUPTED = 75
EXIT_ABORTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(Exception):
    """The run stopped on a signal after saving its state; the message says how to continue."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, signal_name: str, iteration: int, checkpoint: str | None) -> None:
        super().__init__(message)
        self.signal_name, self.iteration, self.checkpoint = signal_name, iteration, checkpoint


class TrainingAborted(KeyboardInterrupt):
    """A second Ctrl-C: the run ends at once, without saving."""


class StopSignals:
    """Turns the first SIGINT/SIGTERM/SIGUSR1 into `requested`; a SIGINT after it raises TrainingAborted.

    A later SIGTERM or SIGUSR1 changes nothing (a scheduler may send both its warning and its
    SIGTERM; a person who presses Ctrl-C after a `kill` wants out). The previous handlers come back on exit. Only
    the main thread can receive signals, so elsewhere (a notebook's worker thread) this does nothing.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            # os.write, not print: the handler may interrupt a write to the same buffered stream.
            _say(f"\n{name} received: stopping after the current step and saving the state"
                 + (" (Ctrl-C again to abort at once, without saving)" if signum == signal.SIGINT else "") + "\n")
        elif signum == signal.SIGINT:
            raise TrainingAborted("aborted by a second Ctrl-C; nothing was saved after the newest checkpoint")


def _say(text: str) -> None:
    try:
        os.write(2, text.encode())
    except OSError:  # stderr closed: the request still counts
        pass


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: workers leave stopping to the main process.

    A terminal's Ctrl-C (and SLURM's signal) reaches every process of the job; a loader worker
    would die of it, and the step in progress would lose its next batch. Workers still end with
    the main process (the loader's watchdog)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
