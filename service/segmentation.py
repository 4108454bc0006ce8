"""One request's path through the service: decode -> prepare windows -> batcher -> finish.

Decoding, planning and merging run on the preprocessing thread pool, off the event loop; the
forward pass runs in the model's batcher with other requests' windows. Everything about the
image and the model (reading, normalizing, tiling, merging, argmax) is `model`'s: this file
only moves the work between threads. On a GPU model the windows are cut and merged on the
GPU, so only the small class-id mask comes back to the CPU.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from model import ImageError, Predictor, WindowPlan, read_image
from service.errors import ServiceError, image_error
from service.model_pool import ServedModel


@dataclass
class Segmentation:
    rgb: np.ndarray  # H×W×3 uint8, as decoded (EXIF orientation applied)
    mask: np.ndarray  # H×W uint8/uint16 class ids
    windows: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds, see `segment`


def _prepare(predictor: Predictor, data: bytes, max_pixels: int, multiscale: bool) -> tuple[np.ndarray, WindowPlan]:
    try:
        rgb = read_image(data, max_pixels)
    except ImageError as exc:
        raise image_error(exc) from exc
    return rgb, predictor.prepare(rgb, multiscale)


async def segment(served: ServedModel, data: bytes, multiscale: bool, executor: Executor,
                  max_pixels: int) -> Segmentation:
    """Segment one uploaded image with a ready model. Raises ServiceError, QueueFull, BatchFailed.

    Timings (seconds): `decode` (read + tile), `queue` (until the first window ran), `compute`
    (forward passes holding this request's windows, shared with other requests), `merge`.
    """
    if served.loaded is None or served.batcher is None:
        raise ServiceError(503, "unavailable", f"model {served.spec.name!r} is not ready")
    loop = asyncio.get_running_loop()
    predictor = served.loaded.predictor
    start = time.perf_counter()
    rgb, plan = await loop.run_in_executor(executor, _prepare, predictor, data, max_pixels, multiscale)
    prepared = time.perf_counter()
    logits, queue_wait, compute = await served.batcher.run(plan.crops)
    ran = time.perf_counter()
    mask = await loop.run_in_executor(executor, predictor.finish, plan, logits)
    timings = {"decode": prepared - start, "queue": queue_wait, "compute": compute,
               "merge": time.perf_counter() - ran}
    return Segmentation(rgb, mask, plan.num_windows, timings)
