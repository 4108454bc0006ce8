"""Download and unpack helpers for the dataset scripts (connected hosts only; nothing else needs them)."""

from __future__ import annotations

import shutil
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm


def download(url: str, target: Path) -> Path:
    """Fetch `url` to `target` with a progress bar; an already complete file is kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and target.stat().st_size > 0:
        print(f"{target} already there, not downloading again")
        return target
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url) as response, open(partial, "wb") as out:  # noqa: S310 - fixed https/http URLs
        total = int(response.headers.get("Content-Length", 0)) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
    partial.rename(target)
    return target


def extract(archive: Path, into: Path) -> None:
    """Unpack a .zip or .tar(.gz) into `into`, refusing members that would escape it."""
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise ValueError(f"{archive} contains an unsafe path {name!r}")
            for member in tqdm(z.infolist(), desc=f"unpacking {archive.name}", unit="file"):
                z.extract(member, into)
        return
    with tarfile.open(archive) as t:
        t.extractall(into, filter="data")  # rejects absolute paths, links out of the tree, devices


def require_free_space(folder: Path, gigabytes: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free / 2**30
    if free < gigabytes:
        raise SystemExit(f"{folder} has {free:.1f} GiB free; this dataset needs about {gigabytes} GiB")
