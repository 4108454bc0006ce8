"""The fast CPU path by default: a checkpoint served on the CPU without `backend:` runs through the
fastest reduced precision that passes the accuracy gate, built once into the cache.

`backend: auto` (the default) for a checkpoint (our folder, an mmseg or official file, zoo:NAME)
on `device: cpu`:

1. the checkpoint is exported to ONNX in SEGMENTER_CACHE_DIR/fast-path/<name>-<digest>/ (the
   digest covers the checkpoint's files, the window and this code's format), its `onnx.source`
   naming the checkpoint (attention maps load it);
2. int8 (NNCF) when the entry gives `calibration:` images, and bf16 on CPUs that run it natively
   (AVX512-BF16 or AMX: no calibration needed), each made and run through the accuracy gate
   (`export.make_reduced_precision`: pixel agreement >= 99% with fp32 on labelled images from
   `eval_data:`, else on synthetic scenes, and an mIoU drop <= 0.5 with labels);
3. the fastest that passed is served by OpenVINO (int8, else bf16); none: PyTorch fp32.

Later starts find the folder and reuse it (its gate figures included). An export folder with
`backend: auto` runs the fastest precision it passed the gate for; a GPU device runs PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model import load_segmenter
from model.resolve import resolve_checkpoint

log = logging.getLogger("segmenter.service")

FAST_PATH_VERSION = 1  # in the digest: a change to how the path is built makes new folders
PREFERENCE = ("int8", "bf16")  # fastest first (docs/benchmarks.md: CPU precision)


@dataclass(frozen=True)
class FastPath:
    """What `build` decided: serve `folder` (an export) in `precision`, or PyTorch when None."""

    folder: Path | None
    precision: str | None  # "int8" | "bf16"; None: no reduced precision passed, serve PyTorch fp32
    gates: dict  # precision -> the gate's figures (GateReport.to_dict()), those that ran
    reused: bool  # found in the cache, nothing built


def best_gated(precisions: dict) -> str | None:
    """The fastest precision an export folder passed the gate for (its segmenter.json `precisions`)."""
    return next((p for p in PREFERENCE if p in precisions), None)


def _digest(checkpoint: Path, window: int | None, calibration: str | None, eval_data: str | None) -> str:
    """sha256 of the checkpoint's files (names, sizes, contents), the window and the options."""
    files = sorted(p for p in checkpoint.rglob("*") if p.is_file()) if checkpoint.is_dir() else [checkpoint]
    digest = hashlib.sha256(f"v{FAST_PATH_VERSION} window={window} calibration={calibration} "
                            f"eval={eval_data}".encode())
    for path in files:
        digest.update(f"{path.relative_to(checkpoint) if checkpoint.is_dir() else path.name}:"
                      f"{path.stat().st_size}".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def build(name: str, checkpoint: str | Path, cache_dir: Path, window: int | None = None,
          calibration: str | None = None, eval_data: str | None = None) -> FastPath:
    """The fast path of one checkpoint: from the cache, or exported and gated now (minutes for a
    large model: the gate segments its scenes twice). Safe to run in several processes at once:
    each builds in a temporary folder and the first to finish publishes it."""
    import export  # here: ONNX, OpenVINO and NNCF only for the models that take this path

    source = Path(resolve_checkpoint(str(checkpoint)))
    folder = cache_dir / "fast-path" / f"{name}-{_digest(source, window, calibration, eval_data)}"
    if export.is_exported(folder):
        precisions = export.read_exported(folder).precisions
        chosen = best_gated(precisions)
        gates = {p: entry["gate"] for p, entry in precisions.items()}
        return FastPath(folder if chosen else None, chosen, gates, reused=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    net = load_segmenter(source)
    gates: dict = {}
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{name}-") as tmp:
        work = export.export_onnx(net, Path(tmp) / "export", window_size=window, source=str(source.resolve()))
        exported = export.read_exported(work)
        labelled = export.read_labelled(Path(eval_data)) if eval_data else None
        wanted = [p for p in PREFERENCE if p != "int8" or calibration]
        if not export.cpu_supports_bf16():
            wanted = [p for p in wanted if p != "bf16"]  # int8 still runs, its other layers in fp32
        for precision in wanted:
            images = export.read_calibration_images(Path(calibration)) if precision == "int8" else None
            log.info("model %s: building the %s fast path and running its accuracy gate", name, precision)
            report = export.make_reduced_precision(net, exported, precision, images, labelled)
            gates[precision] = report.to_dict()
            log.info("model %s: %s", name, report.summary())
            exported = export.read_exported(work)
        try:
            os.replace(work, folder)  # atomic: another process may have published it meanwhile
        except OSError:
            if not export.is_exported(folder):
                raise
            shutil.rmtree(work, ignore_errors=True)
    precisions = export.read_exported(folder).precisions
    chosen = best_gated(precisions)
    return FastPath(folder if chosen else None, chosen, gates, reused=False)

