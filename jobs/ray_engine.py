"""`segmenter predict --engine ray`: many images segmented by a pool of Ray actors.

Ray Data does the distributed work — scheduling, streaming, restarting a dead actor and
retrying its batch — and we do only what is ours:

    driver:  read the checkpoint (a bad one fails here, once); list the images and their output
             names (as the local command names them: `jobs.storage`) -> a Dataset of rows
             {index, location, display, file, name}, one block per batch of images
    actors:  one loaded `Predictor` each (on a GPU with --gpus-per-actor); per batch of rows:
             check each image's cost from its header, read, plan, run every window of the batch
             together (`Predictor.run_many`; one image at a time if the batch fails, e.g. out of
             memory), finish and render as the local engine does (`jobs.per_image.image_files`),
             write the outputs — each file complete or absent (`storage.Output`),
             so a retried batch rewrites the same bytes and every output exists once
    driver:  progress as rows come back; every image without an output is listed with the
             reason; `predictions.json` for --output coco.

A batch whose actor dies is retried `ACTOR_RETRIES` times (a batch that kills every actor it
meets, e.g. out of host memory, must not loop forever); then its images are reported as failed
and the job goes on. Inputs and outputs: `jobs.storage` (local paths every node sees, or URIs).

Install with the `ray` extra (`pip install -e '.[ray]'`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from jobs.inputs import coco_file_clash, relative_names
from jobs.per_image import ImageJob, failure_reason, image_files, model_name
from jobs.storage import Output, Reader, is_uri, list_inputs
from model import Predictor, SegmenterError, image_size, load_segmenter, read_image
from model.annotations import class_annotations
from model.options import SegmentOptions
from model.outputs import COCO_FILE, OUTPUTS, CocoResults
from model.resolve import resolve_checkpoint

ACTOR_RETRIES = 2  # times a batch is retried after its actor died


class RayPredictError(SegmenterError, ValueError):
    """The Ray job cannot start (no Ray, bad options, no GPUs); the message says what to do."""


@dataclass(frozen=True)
class RayJob:
    """What to segment and how: the options of `segmenter predict`, plus the pool's shape."""

    checkpoint: str
    out: str
    outputs: tuple[str, ...] = ("mask",)  # from model.outputs.OUTPUTS
    options: SegmentOptions = field(default_factory=SegmentOptions)  # the one options type
    precision: str = "fp32"
    batch_size: int = 4  # windows per forward pass
    max_windows: int | None = None
    blend: str = "uniform"  # how overlapping windows are averaged (model.inference.BLENDS)
    actors: int = 2
    gpus_per_actor: float = 0.0
    images_per_batch: int = 4  # rows an actor receives at once: their windows run together
    model_name: str = ""  # how JSON outputs name the model; default: from `checkpoint`

    @property
    def coco(self) -> bool:
        return "coco" in self.outputs

    def image_job(self, metadata) -> ImageJob:
        return ImageJob.for_model(self.outputs, self.options, metadata, self.model_name or model_name(self.checkpoint))

    def __post_init__(self) -> None:
        unknown = set(self.outputs) - set(OUTPUTS)
        if unknown or not self.outputs:
            raise RayPredictError(f"outputs {sorted(unknown) or '(none)'}: choose from {', '.join(OUTPUTS)}")
        bounds = [("--actors", self.actors, 1), ("--gpus-per-actor", self.gpus_per_actor, 0),
                  ("--images-per-batch", self.images_per_batch, 1), ("--batch-size", self.batch_size, 1)]
        for name, value, least in bounds:
            if value < least:
                raise RayPredictError(f"{name} {value}: must be at least {least}")


@dataclass
class RayResult:
    written: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files under the input that are not images
    renamed: list[str] = field(default_factory=list)  # images whose outputs keep their suffix (a name clash)
    nodes: set[str] = field(default_factory=set)  # the Ray nodes whose actors segmented images
    coco: dict | None = None


# --- the actor -----------------------------------------------------------------------------
class SegmentActor:
    """One loaded model; segments the batches of rows Ray Data hands it and writes their outputs."""

    def __init__(self, job: RayJob, filesystem_uri: str | None) -> None:
        import ray
        import torch

        self.job = job
        if job.gpus_per_actor > 0 and not torch.cuda.is_available():
            raise RayPredictError(f"this actor was given {job.gpus_per_actor} GPU(s) by Ray but torch sees no CUDA "
                                  "device on its node: install a CUDA build of torch there")
        device = "cuda" if job.gpus_per_actor > 0 else "cpu"
        self.predictor = Predictor(load_segmenter(job.checkpoint), device=device, precision=job.precision,
                                   batch_size=job.batch_size, max_windows=job.max_windows, blend=job.blend)
        self.image_job = job.image_job(self.predictor.metadata)
        self.reader = Reader(filesystem_uri)
        self.output = Output(job.out)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [{key: str(value) for key, value in zip(batch, values, strict=True)}
                for values in zip(*batch.values(), strict=True)]
        errors, sizes, annotations = [""] * len(rows), [(0, 0)] * len(rows), [""] * len(rows)
        images, plans = {}, {}
        for i, row in enumerate(rows):
            try:
                images[i], plans[i] = self._prepare(row)
            except Exception as exc:  # this image fails, with the reason; the batch goes on
                errors[i] = failure_reason(row['display'], exc)
        for i, logits in self._run(plans, errors, rows).items():
            try:
                sizes[i], annotations[i] = self._finish(rows[i], images[i], plans[i], logits)
            except Exception as exc:
                errors[i] = failure_reason(rows[i]['display'], exc)
        return {"index": [int(r["index"]) for r in rows], "file": [r["file"] for r in rows], "error": errors,
                "node": [self.node] * len(rows), "coco": annotations, "height": [h for h, _ in sizes],
                "width": [w for _, w in sizes]}

    def _prepare(self, row: dict[str, str]):
        data = self.reader.read(row["location"])
        options = self.job.options
        cost = self.predictor.check_cost(*image_size(data), options.multiscale, scale=options.scale)  # before decoding
        rgb = read_image(data)
        return rgb, self.predictor.prepare(rgb, options.multiscale, scale=options.scale, checked=cost)

    def _run(self, plans: dict, errors: list[str], rows: list[dict[str, str]]) -> dict:
        """Logits per image: the batch's windows together, or, if that fails (out of memory),
        one image at a time, so that one image's failure is that image's alone."""
        try:
            return dict(zip(plans, self.predictor.run_many(list(plans.values())), strict=True))
        except Exception:
            logits = {}
            for i, plan in plans.items():
                try:
                    logits[i] = self.predictor.run(plan)
                except Exception as exc:
                    errors[i] = failure_reason(rows[i]['display'], exc)
            return logits

    def _finish(self, row: dict[str, str], rgb: np.ndarray, plan, logits) -> tuple[tuple[int, int], str]:
        mask, files = image_files(self.predictor, rgb, plan, logits, row["name"], self.image_job)
        for relative, data in files.items():
            self.output.write(relative, data)
        num_classes = self.predictor.metadata.num_classes
        selected = self.image_job.render.selected  # --classes limits the COCO file as every output
        coco = json.dumps(class_annotations(mask, range(num_classes) if selected is None else selected)) \
            if self.job.coco else ""
        return (int(mask.shape[0]), int(mask.shape[1])), coco


# --- the driver ----------------------------------------------------------------------------
def run_ray(job: RayJob, source: str, address: str | None = None, progress: bool = True) -> RayResult:
    """Segment every image of `source` on a Ray cluster (`address`; None: start or join the
    local one, as `ray.init` does). Per-image failures are collected, not raised."""
    try:
        import ray
        import ray.data  # sets up its loggers, quieted below
    except ImportError as exc:
        raise RayPredictError("--engine ray needs Ray: pip install -e '.[ray]' (or pip install 'ray[data]')") from exc
    from tqdm import tqdm

    listing = list_inputs(source)
    names = relative_names([image.relative for image in listing.images])
    if clash := coco_file_clash(names, job.outputs):
        raise RayPredictError(clash)
    job = _with_absolute_paths(job)
    # Read here first: a bad checkpoint is one message before any cluster work, not N failing actors.
    net = load_segmenter(job.checkpoint)
    job.image_job(net.metadata)  # an unknown class in --classes: here, once
    if not ray.is_initialized():
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    if job.gpus_per_actor > gpus:
        raise RayPredictError(f"--gpus-per-actor {job.gpus_per_actor:g}: the Ray cluster has {gpus:g} GPU(s) now; "
                              "start GPU nodes first (with an autoscaler: keep at least one GPU node up) or drop "
                              "the option")
    rows = [{"index": i, "location": image.location, "display": image.display, "file": image.relative, "name": name}
            for i, (image, name) in enumerate(zip(listing.images, names, strict=True))]
    result = RayResult(skipped=listing.skipped, renamed=[name for image, name in zip(listing.images, names, strict=True)
                                                         if name == image.relative])
    done: dict[int, dict[str, Any]] = {}
    with _quiet_ray_data(), tqdm(total=len(rows), desc="segmenting on ray", unit="img", disable=not progress) as bar:
        dataset = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // job.images_per_batch))
        with warnings.catch_warnings():  # max_task_retries has no named parameter yet (ray < 2.64, pinned)
            warnings.simplefilter("ignore", DeprecationWarning)
            pool = ray.data.ActorPoolStrategy(size=job.actors, max_tasks_in_flight_per_actor=1)
            segmented = dataset.map_batches(
                SegmentActor, fn_constructor_args=(job, listing.filesystem_uri), batch_size=job.images_per_batch,
                batch_format="numpy", compute=pool, num_gpus=job.gpus_per_actor or None, num_cpus=1,
                memory=actor_memory_bytes(net, job),
                udf_modifying_row_count=False, max_task_retries=ACTOR_RETRIES)
        # Actors are SPREAD over the nodes (Ray Data's default scheduling strategy). One batch in
        # flight per actor: an actor that dies takes only its own batch down, not those queued
        # behind it (rows are tiny, images are read by the actor: nothing to pipeline).
        for row in segmented.iter_rows():
            done[int(row["index"])] = row  # a retried batch may come back twice: keep one answer
            bar.update(len(done) - bar.n)
    for index in sorted(set(range(len(rows))) - done.keys()):
        result.failures.append(f"{rows[index]['display']}: its batch failed {ACTOR_RETRIES + 1} times (its actor "
                               "died each time: out of memory? see the Ray logs); fewer --images-per-batch may help")
    coco = CocoResults(net.metadata.class_names) if job.coco else None
    for index in sorted(done):
        row = done[index]
        if row["error"]:
            result.failures.append(str(row["error"]))
            continue
        result.written += 1
        result.nodes.add(str(row["node"]))
        if coco is not None:
            coco.add_annotations(str(row["file"]), int(row["height"]), int(row["width"]), json.loads(row["coco"]))
    output = Output(job.out)
    if coco is not None:
        result.coco = coco.document()
        output.write(COCO_FILE, json.dumps(result.coco).encode())
    output.remove_partials()
    return result


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Our progress bar instead of Ray Data's; its plans and timings to its log file, not the
    terminal; a batch that failed every retry skipped (its images are reported) instead of
    ending the job. The process-wide settings are restored afterwards."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.max_errored_blocks
    handlers = [h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler)]
    levels = [h.level for h in handlers]
    context.enable_progress_bars, context.max_errored_blocks = False, -1
    for handler in handlers:
        handler.setLevel(logging.WARNING)
    try:
        yield
    finally:
        context.enable_progress_bars, context.max_errored_blocks = saved
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def _with_absolute_paths(job: RayJob) -> RayJob:
    """Actors do not run in the driver's folder: local paths become absolute. The checkpoint is
    resolved here once (a zoo name fetched into SEGMENTER_CACHE_DIR, which must be a folder every
    node reads; an export's source found), so actors read a folder and fetch nothing."""
    out = job.out if is_uri(job.out) else str(Path(job.out).resolve())
    checkpoint = str(resolve_checkpoint(job.checkpoint).resolve())
    return replace(job, out=out, checkpoint=checkpoint, model_name=job.model_name or model_name(job.checkpoint))


def actor_memory_bytes(net, job: RayJob) -> int:
    """The host memory one actor is expected to hold, requested from Ray so that it does not pack
    more actors on a node than fit: the weights, 1.5 GiB of Python, torch and headroom, and for
    CPU actors the float32 logits of one batch of images, at two windows per image (a 4:3 photo at
    the test scale) on the patch grid, and the merge's bands and strips (model.inference.merge:
    about 32 MiB each, two per image being merged). Measured before window logits moved to the
    patch grid (benchmarks/ray_predict.py): Seg-T-Mask/16 (150 classes, 512² windows), 4 images per
    batch, up to 2.9 GiB per actor, most of it full-size logits; not re-measured since."""
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    logits = 0
    if job.gpus_per_actor == 0:  # on a GPU actor the logits stay on the GPU
        cells = math.ceil(net.metadata.window_size / net.config.patch_size) ** 2
        logits = job.images_per_batch * 2 * net.metadata.num_classes * cells * 4 + 2 * 2 * 32 * 2**20
    return int(weights + 1.5 * 2**30 + logits)
