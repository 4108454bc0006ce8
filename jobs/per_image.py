"""What a folder job does with each image, the same in every engine (local, Ray): segment it,
render the outputs asked for (`model.outputs`, the vocabulary of the HTTP API too) and name
their files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model import ImageError, ModelMetadata, Predictor, TooManyWindows, WindowPlan
from model.options import SegmentOptions
from model.outputs import FILE_SUFFIXES, RenderOptions, file_suffix, render


@dataclass(frozen=True)
class ImageJob:
    """What every image of a job gets: the outputs, the one options type, and both resolved for
    the job's model once (`for_model`)."""

    outputs: tuple[str, ...]  # from model.outputs.OUTPUTS
    options: SegmentOptions
    render: RenderOptions  # options.render_options(the model's metadata)
    model_name: str  # named in JSON outputs

    @classmethod
    def for_model(cls, outputs: tuple[str, ...], options: SegmentOptions, metadata: ModelMetadata,
                  name: str) -> ImageJob:
        """`name`: how JSON outputs name the model (`model_name(checkpoint)`). ValueError naming an
        unknown class of `options.classes`."""
        return cls(outputs, options, options.render_options(metadata), name)

    @property
    def coco(self) -> bool:
        return "coco" in self.outputs


def model_name(checkpoint: str) -> str:
    """How outputs name a checkpoint: `zoo:NAME` -> NAME, a folder -> its name, a file -> its stem."""
    if checkpoint.startswith("zoo:"):
        return checkpoint[4:]
    path = Path(checkpoint)
    return path.resolve().name if path.is_dir() else path.stem


def image_files(predictor: Predictor, rgb: np.ndarray, plan: WindowPlan, logits, name: str, job: ImageJob
                ) -> tuple[np.ndarray, dict[str, bytes]]:
    """(H×W class ids, {relative file name: bytes}) of one image whose windows ran.

    Merged as `/segment` merges: `finish` for the class ids of mask, overlay, json and coco;
    `finish_with_confidence` (ids and confidence together) for the confidence output. Each merge
    runs only when an output asked for needs it.
    """
    metadata, files = predictor.metadata, {}
    mask = predictor.finish(plan, logits) if set(job.outputs) - {"confidence"} else None
    if "confidence" in job.outputs:
        ids, confidence = predictor.finish_with_confidence(plan, logits)
        files[name + FILE_SUFFIXES["confidence"]] = render("confidence", rgb, ids, metadata, job.model_name,
                                                           confidence, job.render)
        mask = ids if mask is None else mask
    for kind in job.outputs:
        if kind in FILE_SUFFIXES and kind != "confidence":
            files[name + file_suffix(kind, job.render)] = render(kind, rgb, mask, metadata, job.model_name,
                                                                 options=job.render)
    return mask, files


def failure_reason(where: str, exc: Exception) -> str:
    """The line that reports an image a job could not segment (either engine)."""
    if isinstance(exc, TooManyWindows):
        return f"{where}: {exc} (--max-windows; 0 for no limit)"
    if isinstance(exc, (ImageError, OSError)):
        return f"{where}: {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"
