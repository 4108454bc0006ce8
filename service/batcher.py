"""Cross-request batching of sliding windows: the window, not the image, is the unit.

Each request hands its N windows (N×3×h×w, already normalized) to the model's `WindowBatcher`
and awaits their logits. The model's worker tasks (one by default) take windows from the head of
the queue — across requests, in arrival order, of the oldest window's shape — until
`max_batch_size` windows are gathered or the oldest has waited `max_queue_delay_ms`, run them
in one forward pass on the model's own thread(s), and scatter the logits back. One large image
and many small ones thus share batches.

Back-pressure and clean-up:
- the queue holds at most `max_queue_windows` windows; `run` raises `QueueFull` beyond it;
- a request that is cancelled (client gone, deadline passed) takes its unrun windows out;
- a failing batch (exception, out of memory) fails only the requests that had windows in it.

Replicas share nothing (deploy/kubernetes): this queue is the only request state, it lives in
one process, and a request's windows never leave it, so any pod can answer any request and the
autoscaler may add or remove pods. A queue shared between pods (a broker, a cross-pod batcher)
would break that: a request would depend on pods other than the one holding its connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch


class QueueFull(RuntimeError):
    """The model's window queue is full; answer 503 and let the client retry."""


class BatchFailed(RuntimeError):
    """The forward pass that held some of this request's windows raised."""


@dataclass(eq=False)
class _Job:
    """One request's windows and where their logits go."""

    crops: torch.Tensor  # N×3×w×w
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    next: int = 0  # first window not yet taken into a batch
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)  # logits per slice, by first window
    done_windows: int = 0
    queue_wait: float = 0.0  # seconds from submit until its first window ran
    compute: float = 0.0  # seconds of forward passes its windows were part of
    request: list[_Job] = field(default_factory=list)  # every group of its request while it runs; a cycle,
    # cleared when the request ends so the windows and logits are freed at once, not at the next gc

    @property
    def remaining(self) -> int:
        return len(self.crops) - self.next


@dataclass(frozen=True)
class BatchStats:
    size: int  # windows in the batch
    compute: float  # seconds of the forward pass


class WindowBatcher:
    """Queue windows of many requests for one model and run them in shared batches.

    Args:
        forward: B×3×w×w normalized -> B×C×w×w logits (e.g. `Predictor.forward_windows`).
        batches_in_flight: batches run at the same time, each on its own thread. 1 (the default) for a
            GPU: one stream of batches, no locking. On a CPU, 2+ batches with fewer torch threads
            each keep every core busy where one forward pass cannot (docs/benchmarks.md).
        max_batch_size: windows per forward pass.
        max_queue_delay_s: how long a partial batch waits for more windows.
        max_queue_windows: windows allowed to wait; more raises QueueFull.
        on_batch: called after each batch (metrics), with its size and timings.
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], max_batch_size: int,
                 max_queue_delay_s: float, max_queue_windows: int,
                 on_batch: Callable[[BatchStats], None] | None = None, name: str = "model",
                 batches_in_flight: int = 1) -> None:
        self.forward = forward
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_windows = max_queue_windows
        self.on_batch = on_batch
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # windows waiting, over all jobs
        self._wakeup = asyncio.Event()
        self.batches_in_flight = batches_in_flight
        self._executor = ThreadPoolExecutor(max_workers=batches_in_flight, thread_name_prefix=f"batcher-{name}")
        self._tasks: list[asyncio.Task] = []

    # --- the request side ------------------------------------------------------------------
    @property
    def queued_windows(self) -> int:
        return self._queued

    async def run(self, crops: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """Run a request's N windows; returns (N×C×w×w logits, queue wait s, compute s).
        `run_groups` for a request with windows of several shapes."""
        (logits,), queue_wait, compute = await self.run_groups([crops])
        return logits, queue_wait, compute

    async def run_groups(self, groups: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], float, float]:
        """Run one request's windows, one N×3×h×w tensor per window shape (a multi-scale plan
        has several); returns (logits per group, queue wait s of its first window, compute s).

        The request is admitted or refused as a whole: QueueFull at once when the queue has no
        room for all its windows (an empty queue always accepts a request, however large, so
        every image can be served). BatchFailed when a batch that held any of its windows
        failed. Ending early (cancelled, failed) withdraws all its unrun windows.
        """
        if not groups or any(len(crops) == 0 for crops in groups):
            raise ValueError("no windows to run")
        total = sum(len(crops) for crops in groups)
        if self._queued and self._queued + total > self.max_queue_windows:
            raise QueueFull(f"{self._queued} windows are queued (limit {self.max_queue_windows})")
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        jobs = [_Job(crops, loop.create_future()) for crops in groups]
        for job in jobs:
            job.request = jobs
        self._jobs.extend(jobs)
        self._queued += total
        self._wakeup.set()
        try:
            logits = [await job.future for job in jobs]
        finally:
            for job in jobs:
                self._withdraw(job)
                job.request = []
                if not job.future.done():
                    job.future.cancel()  # batch threads drop results for done futures
                elif not job.future.cancelled():
                    job.future.exception()  # retrieved: a second group's failure is not logged as lost
        return logits, min(job.queue_wait for job in jobs), sum(job.compute for job in jobs)

    def _withdraw(self, job: _Job) -> None:
        """Take a finished or abandoned job's unrun windows out of the queue."""
        if job in self._jobs:
            self._jobs.remove(job)
            self._queued -= job.remaining
            job.next = len(job.crops)

    # --- the worker side -------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        while len(self._tasks) < self.batches_in_flight:
            self._tasks.append(asyncio.get_running_loop().create_task(self._work(), name="window-batcher"))

    async def _gather_batch(self) -> list[tuple[_Job, int, int]]:
        """Wait for windows, then take up to max_batch_size: [(job, start, stop), ...]."""
        while not self._queued:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = self._jobs[0].enqueued + self.max_queue_delay_s
        while self._queued < self.max_batch_size and (wait := deadline - time.perf_counter()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), wait)
            except TimeoutError:
                break
        if not self._queued:  # everything was withdrawn while we waited
            return []
        # One batch holds windows of one shape (the oldest job's): other shapes wait their turn.
        shape = self._jobs[0].crops.shape[-2:]
        slices, room = [], self.max_batch_size
        for job in list(self._jobs):
            if not room:
                break
            if job.crops.shape[-2:] != shape:
                continue
            take = min(room, job.remaining)
            slices.append((job, job.next, job.next + take))
            job.next += take
            room -= take
            self._queued -= take
            if not job.remaining:
                self._jobs.remove(job)
        return slices

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            slices = await self._gather_batch()
            if not slices:
                continue
            started = time.perf_counter()
            for job, start, _ in slices:
                if start == 0:
                    job.queue_wait = started - job.enqueued
            batch = [job.crops[start:stop] for job, start, stop in slices]
            try:
                logits = await loop.run_in_executor(self._executor, self._forward, batch)
            except Exception as exc:  # noqa: BLE001 - any backend failure fails this batch only
                # ...and the whole of each request it held: their other groups are withdrawn now,
                # before the next batch is taken, so no window runs for a request that has failed.
                for member in {member for job, _, _ in slices for member in job.request or [job]}:
                    if not member.future.done():
                        member.future.set_exception(BatchFailed(f"{type(exc).__name__}: {exc}"))
                    self._withdraw(member)
                continue
            compute = time.perf_counter() - started
            if self.on_batch:
                self.on_batch(BatchStats(sum(stop - start for _, start, stop in slices), compute))
            offset = 0
            for job, start, stop in slices:
                part = logits[offset : offset + stop - start]
                offset += stop - start
                self._deliver(job, start, stop, part, compute)

    def _forward(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return self.forward(torch.cat(batch) if len(batch) > 1 else batch[0])

    def _deliver(self, job: _Job, start: int, stop: int, logits: torch.Tensor, compute: float) -> None:
        if job.future.done():  # cancelled or failed meanwhile: drop its results
            return
        job.outputs[start] = logits
        job.compute += compute
        job.done_windows += stop - start
        if job.done_windows == len(job.crops):
            # Several batches in flight: slices finish in any order.
            parts = [job.outputs[k] for k in sorted(job.outputs)]
            job.future.set_result(torch.cat(parts) if len(parts) > 1 else parts[0])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(BatchFailed("the service is shutting down"))
        self._executor.shutdown(wait=True)
