"""Any checkpoint file `load_local_checkpoint` reads -> our folder format, with where it came from recorded."""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import Any

from model.checkpoints.folder import save_checkpoint
from model.checkpoints.loading import load_local_checkpoint
from model.modeling.segmenter import Segmenter


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def convert_local_checkpoint(source: str | os.PathLike, out: str | os.PathLike, **provenance: Any) -> Segmenter:
    """Load `source` (official, mmseg or ours) and save it as our folder at `out`.

    The provenance records the source file's sha256 (for a file; given as sha256= by a caller
    that has just computed it, it is not read again), the conversion date, and any extra facts
    given (e.g. url=, published_miou=).
    """
    net = load_local_checkpoint(source)
    path = Path(source)
    weights = path if path.is_file() else path / "checkpoint.pth"
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    facts = {"converted_from": str(path), "converted_at": now}
    if weights.is_file() and "sha256" not in provenance:
        facts["sha256"] = file_sha256(weights)
    net.metadata = net.metadata.replace(provenance={**net.metadata.provenance, **facts, **provenance})
    save_checkpoint(net, out)
    return net
