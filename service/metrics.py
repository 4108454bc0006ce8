"""Prometheus metrics, kept in a registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MODEL_STATES = ("loading", "ready", "failed")
# The `model` label of requests that named no configured model: labels only ever take configured
# names, so no client can create series without bound.
UNKNOWN_MODEL = "unknown"


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("segmenter_requests", "Segmentation requests by model, output and HTTP status",
                                ["model", "output", "status"], registry=r)
        self.latency = Histogram("segmenter_request_seconds", "Time to answer a segmentation request",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("segmenter_queue_wait_seconds", "Time a request's first window waited for a batch",
                                    ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute = Histogram("segmenter_batch_compute_seconds", "Forward-pass time per batch",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("segmenter_batch_size", "Windows per forward pass", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.windows = Counter("segmenter_windows", "Sliding windows processed", ["model"], registry=r)
        self.queue_depth = Gauge("segmenter_queue_windows", "Windows waiting for a batch", ["model"], registry=r)
        self.in_flight = Gauge("segmenter_requests_in_flight", "Segmentation requests being answered", registry=r)
        self.model_state = Gauge("segmenter_model_state", "1 for each model's current state", ["model", "state"],
                                 registry=r)
        self.rejected = Counter("segmenter_rejected", "Requests refused before running, by reason",
                                ["reason"], registry=r)
        self.cancelled = Counter("segmenter_cancelled", "Requests whose work was stopped before it finished, by why "
                                 "(timeout, client_gone) and the stage it stopped in (decode, queue, merge)",
                                 ["model", "reason", "stage"], registry=r)
        self.in_flight_bytes = Gauge("segmenter_in_flight_bytes", "Estimated memory of the requests in flight "
                                     "(reserved from the image header until the answer)", ["model"], registry=r)
        r.register(_GpuMemoryCollector())

    def set_model_state(self, model: str, state: str) -> None:
        for s in MODEL_STATES:
            self.model_state.labels(model=model, state=s).set(1.0 if s == state else 0.0)


class _GpuMemoryCollector:
    """GPU memory in use and reserved by torch, per visible GPU (nothing on a CPU-only host)."""

    def collect(self):
        import torch

        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return
        allocated = GaugeMetricFamily("segmenter_gpu_memory_allocated_bytes", "GPU memory held by tensors",
                                      labels=["device"])
        reserved = GaugeMetricFamily("segmenter_gpu_memory_reserved_bytes", "GPU memory reserved by torch's allocator",
                                     labels=["device"])
        for i in range(torch.cuda.device_count()):
            allocated.add_metric([f"cuda:{i}"], torch.cuda.memory_allocated(i))
            reserved.add_metric([f"cuda:{i}"], torch.cuda.memory_reserved(i))
        yield allocated
        yield reserved
