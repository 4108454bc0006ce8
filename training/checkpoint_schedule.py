"""When a run saves its state, apart from evaluations: every N iterations and every M minutes.

Evaluations (`run.eval_every`) save too, but they are rare on the paper's configs (8000
iterations: hours); `run.checkpoint_every` and `run.checkpoint_minutes` bound what a crash or a
`kill -9` can cost. Signals (training/stop_signals.py) save whatever the schedule says.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CheckpointSchedule:
    """Due every `every` iterations and/or once `minutes` have passed since the last save (0: off).

    `clock` (seconds, monotonic) is read at construction, by `time_due` and by `saved`; tests pass
    a fake one.
    """

    def __init__(self, every: int, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.seconds, self.clock = every, minutes * 60.0, clock
        self.last_save = clock()

    def iteration_due(self, done: int) -> bool:
        """Whether the state after `done` iterations falls on the iteration schedule."""
        return self.every > 0 and done % self.every == 0

    def time_due(self) -> bool:
        return self.seconds > 0 and self.clock() - self.last_save >= self.seconds

    def saved(self) -> None:
        self.last_save = self.clock()
