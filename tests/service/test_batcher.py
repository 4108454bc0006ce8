"""WindowBatcher: windows of many requests share batches; back-pressure, cancellation and
failures stay within their requests. Scheduling is driven by asyncio, never by sleeping."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from service.batcher import BatchFailed, QueueFull, WindowBatcher


class RecordingForward:
    """logits = crops summed over channels, repeated as 2 classes; records every batch size.

    With `gate` set, each call waits for the test to release it (a threading.Event), so a
    test can hold the worker inside a forward pass."""

    def __init__(self, gate: bool = False, fail_on_call: int | None = None) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event() if gate else None
        self.entered = threading.Event()
        self.fail_on_call = fail_on_call

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(crops))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never released the forward pass"
        if self.fail_on_call == len(self.sizes):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return expected(crops)


def crops_for(request: int, count: int) -> torch.Tensor:
    """count windows whose values identify (request, window)."""
    return torch.stack([torch.full((3, 4, 4), float(request * 100 + i)) for i in range(count)])


def expected(crops: torch.Tensor) -> torch.Tensor:
    summed = crops.sum(dim=1, keepdim=True)
    return torch.cat([summed, -summed], dim=1)


async def _hold_worker(batcher: WindowBatcher, forward: RecordingForward, crops: torch.Tensor) -> asyncio.Task:
    """Start a request and return once the worker is inside its gated forward pass."""
    task = asyncio.create_task(batcher.run(crops))
    assert await asyncio.to_thread(forward.entered.wait, 10), "the worker never started the forward pass"
    return task


async def _yield_until(predicate) -> None:
    """Let other tasks run until predicate() holds (bounded: fails instead of hanging)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def test_windows_of_many_requests_share_batches_and_come_back_to_their_owner():
    async def scenario():
        forward = RecordingForward()
        batcher = WindowBatcher(forward, max_batch_size=8, max_queue_delay_s=5.0, max_queue_windows=100)
        sizes = [3, 1, 7, 2, 5, 1, 1, 12]  # 32 windows: 4 full batches of 8
        tasks = [asyncio.create_task(batcher.run(crops_for(r, n))) for r, n in enumerate(sizes)]
        results = await asyncio.gather(*tasks)
        for r, (n, (logits, wait, compute)) in enumerate(zip(sizes, results, strict=True)):
            torch.testing.assert_close(logits, expected(crops_for(r, n)))
            assert wait >= 0 and compute > 0
        assert forward.sizes == [8, 8, 8, 8]  # full batches: the delay never had to expire
        assert batcher.queued_windows == 0
        await batcher.close()

    asyncio.run(scenario())


def test_a_lone_request_runs_after_the_queue_delay():
    async def scenario():
        forward = RecordingForward()
        batcher = WindowBatcher(forward, max_batch_size=8, max_queue_delay_s=0.001, max_queue_windows=100)
        logits, _, _ = await batcher.run(crops_for(1, 3))
        torch.testing.assert_close(logits, expected(crops_for(1, 3)))
        assert forward.sizes == [3]
        await batcher.close()

    asyncio.run(scenario())


def test_full_queue_refuses_and_accepts_again_once_drained():
    async def scenario():
        forward = RecordingForward(gate=True)
        batcher = WindowBatcher(forward, max_batch_size=2, max_queue_delay_s=0.0, max_queue_windows=4)
        first = await _hold_worker(batcher, forward, crops_for(1, 2))
        second = asyncio.create_task(batcher.run(crops_for(2, 4)))  # fills the queue
        await _yield_until(lambda: batcher.queued_windows == 4)
        with pytest.raises(QueueFull, match="limit 4"):
            await batcher.run(crops_for(3, 1))
        forward.gate.set()
        await asyncio.gather(first, second)
        logits, _, _ = await batcher.run(crops_for(3, 1))
        torch.testing.assert_close(logits, expected(crops_for(3, 1)))
        await batcher.close()

    asyncio.run(scenario())


def test_an_empty_queue_accepts_a_request_larger_than_the_limit():
    async def scenario():
        batcher = WindowBatcher(RecordingForward(), max_batch_size=4, max_queue_delay_s=0.0, max_queue_windows=2)
        logits, _, _ = await batcher.run(crops_for(1, 9))
        torch.testing.assert_close(logits, expected(crops_for(1, 9)))
        await batcher.close()

    asyncio.run(scenario())


def test_a_cancelled_request_takes_its_windows_out_of_the_queue():
    async def scenario():
        forward = RecordingForward(gate=True)
        batcher = WindowBatcher(forward, max_batch_size=2, max_queue_delay_s=0.0, max_queue_windows=100)
        first = await _hold_worker(batcher, forward, crops_for(1, 2))
        abandoned = asyncio.create_task(batcher.run(crops_for(2, 6)))
        await _yield_until(lambda: batcher.queued_windows == 6)
        abandoned.cancel()  # the client went away, or its deadline passed
        await asyncio.gather(abandoned, return_exceptions=True)
        assert batcher.queued_windows == 0
        forward.gate.set()
        await first
        third, _, _ = await batcher.run(crops_for(3, 1))
        torch.testing.assert_close(third, expected(crops_for(3, 1)))
        assert forward.sizes == [2, 1]  # the abandoned windows never ran
        await batcher.close()

    asyncio.run(scenario())


def test_a_failing_batch_fails_only_its_requests():
    async def scenario():
        forward = RecordingForward(gate=True, fail_on_call=1)
        batcher = WindowBatcher(forward, max_batch_size=4, max_queue_delay_s=0.0, max_queue_windows=100)
        doomed = await _hold_worker(batcher, forward, crops_for(1, 3))
        later = asyncio.create_task(batcher.run(crops_for(2, 2)))
        await _yield_until(lambda: batcher.queued_windows == 2)
        forward.gate.set()
        with pytest.raises(BatchFailed, match="out of memory"):
            await doomed
        logits, _, _ = await later
        torch.testing.assert_close(logits, expected(crops_for(2, 2)))
        assert forward.sizes == [3, 2]
        await batcher.close()

    asyncio.run(scenario())


def test_a_request_split_over_batches_that_fail_midway_fails_once_and_leaves_nothing_queued():
    async def scenario():
        forward = RecordingForward(fail_on_call=1)
        batcher = WindowBatcher(forward, max_batch_size=2, max_queue_delay_s=0.0, max_queue_windows=100)
        with pytest.raises(BatchFailed):
            await batcher.run(crops_for(1, 5))
        assert batcher.queued_windows == 0 and forward.sizes == [2]
        logits, _, _ = await batcher.run(crops_for(2, 3))
        torch.testing.assert_close(logits, expected(crops_for(2, 3)))
        await batcher.close()

    asyncio.run(scenario())


def test_with_two_workers_slices_finishing_out_of_order_are_put_back_in_order():
    async def scenario():
        first_may_finish = threading.Event()
        calls: list[int] = []

        def forward(crops):
            calls.append(len(crops))
            if len(calls) == 1:  # hold the first batch until the second has finished
                assert first_may_finish.wait(10)
            else:
                first_may_finish.set()
            return expected(crops)

        batcher = WindowBatcher(forward, max_batch_size=3, max_queue_delay_s=0.0, max_queue_windows=100,
                                batches_in_flight=2)
        logits, _, _ = await batcher.run(crops_for(4, 6))  # two slices of 3, run on two threads
        torch.testing.assert_close(logits, expected(crops_for(4, 6)))
        assert calls == [3, 3]
        await batcher.close()

    asyncio.run(scenario())


def _crops_of_size(request: int, count: int, size: int) -> torch.Tensor:
    return torch.stack([torch.full((3, size, size), float(request * 100 + i)) for i in range(count)])


def test_a_request_with_windows_of_two_shapes_is_admitted_as_one_on_an_empty_queue():
    async def scenario():
        batcher = WindowBatcher(RecordingForward(), max_batch_size=4, max_queue_delay_s=0.0, max_queue_windows=4)
        groups = [_crops_of_size(1, 3, 4), _crops_of_size(1, 3, 8)]  # 6 windows > the limit of 4
        logits, _, _ = await batcher.run_groups(groups)
        for crops, got in zip(groups, logits, strict=True):
            torch.testing.assert_close(got, expected(crops))
        await batcher.close()

    asyncio.run(scenario())


def test_a_failing_group_withdraws_the_requests_other_groups():
    async def scenario():
        forward = RecordingForward(gate=True, fail_on_call=1)
        batcher = WindowBatcher(forward, max_batch_size=4, max_queue_delay_s=0.0, max_queue_windows=100)
        request = asyncio.create_task(batcher.run_groups([_crops_of_size(1, 2, 4), _crops_of_size(1, 3, 8)]))
        assert await asyncio.to_thread(forward.entered.wait, 10), "the worker never started the forward pass"
        await _yield_until(lambda: batcher.queued_windows == 3)  # the second group waits behind the first
        forward.gate.set()
        with pytest.raises(BatchFailed, match="out of memory"):
            await request
        assert batcher.queued_windows == 0 and forward.sizes == [2]  # its other group never ran
        logits, _, _ = await batcher.run(crops_for(2, 1))
        torch.testing.assert_close(logits, expected(crops_for(2, 1)))
        await batcher.close()

    asyncio.run(scenario())
