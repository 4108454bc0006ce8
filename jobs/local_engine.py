"""`segmenter predict` on this machine: the images of a folder, one after the other."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from jobs.inputs import Inputs
from jobs.per_image import ImageJob, failure_reason, image_files
from model import ImageError, Predictor, TooManyWindows, image_size, read_image
from model.outputs import COCO_FILE, CocoResults


@dataclass
class LocalResult:
    written: int = 0
    failures: list[str] = field(default_factory=list)


def run_local(inputs: Inputs, predictor: Predictor, out: Path, job: ImageJob) -> LocalResult:
    """Segment every image of `inputs`, writing its outputs under `out`; failures are collected."""
    out.mkdir(parents=True, exist_ok=True)
    coco = CocoResults(predictor.metadata.class_names) if job.coco else None
    result = LocalResult()
    for path in tqdm(inputs.images, desc="segmenting", unit="img", disable=len(inputs.images) == 1):
        try:
            # The cost is checked from the header, before the image is decoded.
            options = job.options
            cost = predictor.check_cost(*image_size(path), options.multiscale, scale=options.scale)
            rgb = read_image(path)
            plan = predictor.prepare(rgb, options.multiscale, scale=options.scale, checked=cost)
            mask, files = image_files(predictor, rgb, plan, predictor.run(plan), inputs.names[path], job)
        except (ImageError, OSError, TooManyWindows) as exc:
            result.failures.append(failure_reason(str(path), exc))
            continue
        for relative, data in files.items():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_bytes(data)
        if coco is not None:
            coco.add(path.relative_to(inputs.root).as_posix(), mask, job.render.selected)
        result.written += 1
    if coco is not None:
        (out / COCO_FILE).write_text(json.dumps(coco.document()))
    return result
