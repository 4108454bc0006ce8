"""Admission: each model holds at most a budget of request memory in flight.

A request's cost (`model.WindowCost.bytes`: its decoded image, window crops, window logits and
merged views) is known from the image header, before anything is decoded. It is reserved here
from that moment until the answer is rendered, so the memory the service holds for a model
is bounded by the budget, whatever the number of clients — the windows-queue limit as memory:

    budget = max_queue_windows × the cost of one window-sized image

An empty model admits any request that passed the per-request limit, so every allowed image
can be served; beyond the budget a request is refused at once (503 + Retry-After), before its
image is decoded. State is per process: replicas share nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.batcher import QueueFull


class Admission:
    def __init__(self, budget_bytes: int, window_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.window_bytes = window_bytes  # for messages: the budget in windows
        self.reserved_bytes = 0

    @asynccontextmanager
    async def reserve(self, cost_bytes: int) -> AsyncIterator[None]:
        """Hold `cost_bytes` of the budget for the block; QueueFull at once if it does not fit."""
        if self.reserved_bytes and self.reserved_bytes + cost_bytes > self.budget_bytes:
            raise QueueFull(f"{self.reserved_bytes / 2**20:,.0f} MiB of requests are in flight for this model "
                            f"(budget {self.budget_bytes / 2**20:,.0f} MiB = "
                            f"{self.budget_bytes // self.window_bytes} windows, SEGMENTER_MAX_QUEUE_WINDOWS)")
        self.reserved_bytes += cost_bytes
        try:
            yield
        finally:
            self.reserved_bytes -= cost_bytes
