"""`segmenter predict --engine ray`: many images segmented by a pool of Ray actors.

Ray Data does the distributed work — scheduling, streaming, retrying a task whose actor died
(its actors restart and their tasks are retried by default) — and we do only what is ours:

    driver:  list the images and their output names (as the local command names them) -> a
             Dataset of rows {index, location, file, name}
    actors:  one loaded `Predictor` each (on a GPU with --gpus-per-worker); per batch of rows:
             read, plan, run every window of the batch together (`Predictor.run_many`), finish,
             write the outputs — each file written to a temporary name and renamed, so a file
             is either complete or absent, and a retried batch rewrites the same bytes
    driver:  progress as rows come back; failures listed; `predictions.json` for --format coco.

Inputs: a local folder or image (every node must see the same path: a shared filesystem), a
text file listing paths or URIs (one per line), or a URI that pyarrow's filesystems read
(`s3://bucket/prefix`, `gs://...`, `hdfs://...`: every image under it). Outputs go to a local
path every node can write, or such a URI.

Install with the `ray` extra (`pip install -e '.[ray]'`).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from model.batch import CocoResults, find_images, output_pictures, png_bytes, relative_names
from model.checkpoints import load_segmenter
from model.errors import SegmenterError
from model.inference.images import IMAGE_SUFFIXES, read_image

PARTIAL = ".partial"  # suffix of a file being written; renamed away when complete


class RayPredictError(SegmenterError, ValueError):
    """The Ray job cannot start (no Ray, no images, a bad input); the message says what to do."""


@dataclass(frozen=True)
class RayJob:
    """What to segment and how: the options of `segmenter predict`, plus the pool's shape."""

    checkpoint: str
    out: str
    with_mask: bool = True
    overlay: bool = False
    coco: bool = False
    alpha: float = 0.5
    multiscale: bool = False
    scale: int | str | None = None
    precision: str = "fp32"
    batch_size: int = 4  # windows per forward pass
    max_windows: int | None = None
    workers: int = 2  # actors
    gpus_per_worker: float = 0.0
    images_per_batch: int = 4  # rows an actor receives at once: their windows run together


@dataclass
class RayResult:
    written: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files under the input that are not images
    nodes: set[str] = field(default_factory=set)  # the Ray nodes whose actors segmented images
    coco: dict | None = None


# --- inputs ------------------------------------------------------------------------------------
def _is_uri(text: str) -> bool:
    return "://" in text


def list_inputs(source: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(location, relative file) per image, and the files skipped (not images)."""
    if _is_uri(source):
        from pyarrow import fs

        filesystem, root = fs.FileSystem.from_uri(source)
        scheme = source.split("://", 1)[0]
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
        files = sorted(i.path for i in infos if i.type == fs.FileType.File)
        images = [f for f in files if PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES]
        skipped = [f"{scheme}://{f}" for f in files if f not in images]
        return [(f"{scheme}://{f}", PurePosixPath(f).relative_to(root).as_posix()) for f in images], skipped
    path = Path(source)
    if path.is_file() and path.suffix.lower() in (".txt", ".lst"):
        lines = [line.strip() for line in path.read_text().splitlines()]
        entries = [line for line in lines if line and not line.startswith("#")]
        common = os.path.commonpath([e.split("://", 1)[-1] for e in entries]) if len(entries) > 1 else ""
        relative = [os.path.relpath(e.split("://", 1)[-1], common) if common else PurePosixPath(e).name
                    for e in entries]
        images = [(e, r) for e, r in zip(entries, relative, strict=True)
                  if PurePosixPath(r).suffix.lower() in IMAGE_SUFFIXES]
        return images, [e for e in entries if PurePosixPath(e).suffix.lower() not in IMAGE_SUFFIXES]
    inputs = find_images(path)
    return ([(str(p.resolve()), p.relative_to(inputs.root).as_posix()) for p in inputs.images],
            [str(p) for p in inputs.skipped])


def _read_bytes(location: str) -> bytes:
    if _is_uri(location):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(location)
        with filesystem.open_input_file(path) as f:
            return f.read()
    return Path(location).read_bytes()


class _Output:
    """Writes files under OUT (a local path or a URI): complete or not at all."""

    def __init__(self, out: str) -> None:
        self.out = out
        if _is_uri(out):
            from pyarrow import fs

            self.filesystem, self.root = fs.FileSystem.from_uri(out)
        else:
            self.filesystem, self.root = None, out

    def write(self, relative: str, data: bytes) -> None:
        if self.filesystem is not None:  # object stores publish an object only once it is complete
            path = f"{self.root.rstrip('/')}/{relative}"
            self.filesystem.create_dir(str(PurePosixPath(path).parent), recursive=True)
            with self.filesystem.open_output_stream(path) as f:
                f.write(data)
            return
        final = Path(self.root) / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{uuid.uuid4().hex}{PARTIAL}")
        partial.write_bytes(data)
        os.replace(partial, final)  # atomic: a reader sees the old file or the new, never half


# --- the actor -----------------------------------------------------------------------------
class SegmentActor:
    """One loaded model; segments the batches of rows Ray Data hands it and writes their outputs."""

    def __init__(self, job: RayJob) -> None:
        import ray
        import torch

        from model.inference.predictor import Predictor

        self.job = job
        if job.gpus_per_worker > 0 and not torch.cuda.is_available():
            raise RayPredictError(f"this actor was given {job.gpus_per_worker} GPU(s) by Ray but torch sees no CUDA "
                                  "device on its node: install a CUDA build of torch there")
        device = "cuda" if job.gpus_per_worker > 0 else "cpu"
        self.predictor = Predictor(load_segmenter(job.checkpoint), device=device, precision=job.precision,
                                   batch_size=job.batch_size, max_windows=job.max_windows)
        self.output = _Output(job.out)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from model.annotations import class_annotations
        from model.inference.cost import TooManyWindows
        from model.inference.images import ImageError

        job, predictor = self.job, self.predictor
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        errors = {i: "" for i in range(len(rows))}
        images, plans = {}, {}
        for i, row in enumerate(rows):
            try:
                images[i] = read_image(_read_bytes(str(row["location"])))
                plans[i] = predictor.prepare(images[i], job.multiscale, scale=job.scale)
            except (ImageError, OSError) as exc:
                errors[i] = f"{row['location']}: {exc}"
            except TooManyWindows as exc:
                errors[i] = f"{row['location']}: {exc} (--max-windows; 0 for no limit)"
        logits = dict(zip(plans, predictor.run_many(list(plans.values())), strict=True))
        annotations, sizes = [""] * len(rows), [(0, 0)] * len(rows)
        for i, plan in plans.items():
            mask = predictor.finish(plan, logits[i])
            name = str(rows[i]["name"])
            for relative, picture in output_pictures(name, images[i], mask, predictor.metadata, job.with_mask,
                                                     job.overlay, job.alpha).items():
                self.output.write(relative, png_bytes(relative, picture))
            sizes[i] = mask.shape
            if job.coco:
                classes = range(predictor.metadata.num_classes)
                annotations[i] = json.dumps(class_annotations(mask, classes))
        return {"index": [int(r["index"]) for r in rows], "file": [str(r["file"]) for r in rows],
                "error": [errors[i] for i in range(len(rows))], "node": [self.node] * len(rows),
                "coco": annotations, "height": [int(s[0]) for s in sizes], "width": [int(s[1]) for s in sizes]}


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

    images, skipped = list_inputs(source)
    if not images:
        raise RayPredictError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    names = relative_names([relative for _, relative in images])
    job = _with_absolute_paths(job)
    # Read here first: a bad checkpoint is one message before any cluster work, not N failing actors.
    net = load_segmenter(job.checkpoint)
    if not ray.is_initialized():
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    if job.gpus_per_worker > gpus:
        raise RayPredictError(f"--gpus-per-worker {job.gpus_per_worker}: the Ray cluster has {gpus:g} GPU(s); "
                              "start GPU nodes (or an autoscaler with GPU node types) or drop the option")
    for handler in logging.getLogger("ray.data").handlers:  # its plans and timings stay in its log file
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours below counts images, not blocks
    rows = [{"index": i, "location": location, "file": relative, "name": name}
            for i, ((location, relative), name) in enumerate(zip(images, names, strict=True))]
    batches = -(-len(rows) // job.images_per_batch)  # a block per batch: the unit Ray retries
    dataset = ray.data.from_items(rows, override_num_blocks=batches)
    segmented = dataset.map_batches(
        SegmentActor, fn_constructor_args=(job,), batch_size=job.images_per_batch, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=job.workers), num_gpus=job.gpus_per_worker or None, num_cpus=1,
        memory=actor_memory_bytes(net, job), udf_modifying_row_count=False)
    # Ray Data's defaults do the rest: actors are SPREAD over the nodes (DataContext.scheduling_strategy),
    # and a dead actor is restarted and its batches retried (max_restarts=-1, max_task_retries=-1).
    result = RayResult(skipped=skipped)
    done: dict[int, dict[str, Any]] = {}
    with tqdm(total=len(rows), desc="segmenting on ray", unit="img", disable=not progress) as bar:
        for row in segmented.iter_rows():
            done[int(row["index"])] = row  # a retried batch may come back twice: keep one answer
            bar.update(len(done) - bar.n)
    for index in sorted(set(range(len(rows))) - done.keys()):  # Ray retries until done or raises: a guard
        result.failures.append(f"{rows[index]['location']}: no result came back from the Ray cluster")
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
    if coco is not None:
        result.coco = coco.document()
        _Output(job.out).write("predictions.json", json.dumps(result.coco).encode())
    _remove_partials(job.out)
    return result


def _with_absolute_paths(job: RayJob) -> RayJob:
    """Actors do not run in the driver's folder: local paths become absolute."""
    from dataclasses import replace

    out = job.out if _is_uri(job.out) else str(Path(job.out).resolve())
    checkpoint = str(Path(job.checkpoint).resolve()) if Path(job.checkpoint).exists() else job.checkpoint
    return replace(job, out=out, checkpoint=checkpoint)


def actor_memory_bytes(net, job: RayJob) -> int:
    """The host memory one actor is expected to hold, requested from Ray so that it does not pack
    more actors on a node than fit: the weights, 1.5 GiB of Python, torch and headroom, and for
    CPU actors the float32 logits of one batch of images with their merge buffers (2×), at two
    windows per image (a 4:3 photo at the test scale). Measured (benchmarks/ray_predict.py):
    Seg-T-Mask/16 (150 classes, 512² windows), 4 images per batch, up to 2.9 GiB per actor; this
    gives 3.9 GiB, the 1.25× margin Ray Data's memory check asks for."""
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    logits = 0
    if job.gpus_per_worker == 0:  # on a GPU actor the logits stay on the GPU
        window = net.metadata.window_size
        logits = 2 * job.images_per_batch * 2 * net.metadata.num_classes * window * window * 4
    return int(weights + 1.5 * 2**30 + logits)


def _remove_partials(out: str) -> None:
    """Files an actor was writing when it died (its batch was retried and rewrote them)."""
    if _is_uri(out) or not Path(out).is_dir():
        return
    for partial in Path(out).rglob(f"*{PARTIAL}"):
        partial.unlink(missing_ok=True)
