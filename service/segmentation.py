"""One request's path through the service: decode -> plan windows -> batcher -> merge -> argmax.

Everything but the forward pass runs on the preprocessing thread pool, off the event loop; on a
GPU model the image is normalized, resized and tiled on the GPU and the argmax happens there,
so only the small class-id mask comes back to the CPU.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import torch

from model import Predictor, WindowPlan, class_id_dtype
from service.images import decode_image
from service.model_pool import ServedModel


@dataclass
class Segmentation:
    rgb: np.ndarray  # H×W×3 uint8, as decoded (EXIF orientation applied)
    mask: np.ndarray  # H×W uint8/uint16 class ids
    windows: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode, queue, compute, merge


def _prepare(predictor: Predictor, data: bytes, max_pixels: int, multiscale: bool) -> tuple[np.ndarray, WindowPlan]:
    rgb = decode_image(data, max_pixels)
    with torch.inference_mode():
        return rgb, predictor.plan(predictor.to_tensor(rgb), multiscale)


def _finish(predictor: Predictor, plan: WindowPlan, logits: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        ids = plan.class_ids(logits)  # the argmax runs where the logits are (the GPU for GPU models)
        return ids.cpu().numpy().astype(class_id_dtype(predictor.num_classes))


async def segment(served: ServedModel, data: bytes, multiscale: bool, executor: Executor,
                  max_pixels: int) -> Segmentation:
    """Segment one uploaded image with a ready model. Raises ServiceError, QueueFull, BatchFailed."""
    assert served.loaded is not None and served.batcher is not None, "segment() needs a ready model"
    loop = asyncio.get_running_loop()
    predictor = served.loaded.predictor
    start = time.perf_counter()
    rgb, plan = await loop.run_in_executor(executor, _prepare, predictor, data, max_pixels, multiscale)
    prepared = time.perf_counter()
    logits, queue_wait, compute = await served.batcher.run(plan.crops)
    ran = time.perf_counter()
    mask = await loop.run_in_executor(executor, _finish, predictor, plan, logits)
    timings = {"decode": prepared - start, "queue": queue_wait, "compute": compute,
               "merge": time.perf_counter() - ran}
    return Segmentation(rgb, mask, plan.num_windows, timings)
