"""Fetch a registry checkpoint by name: download, verify, convert to our folder, cache.

    folder = fetch("ade20k-seg-b-mask-16")          # <cache>/models/ade20k-seg-b-mask-16

The folder is the converted checkpoint (segmenter.json records the zoo name, URL, sha256,
published mIoU and date). A second fetch finds it and returns at once. Downloads go to
`<cache>/downloads/<name>/` and are removed once converted; an interrupted one resumes there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from model.checkpoints.convert import convert_local_checkpoint
from model.checkpoints.folder import META_FILE
from model.zoo.download import Progress, download
from model.zoo.registry import ZooEntry, ZooError, get_entry, load_registry, mirrored

CACHE_ENV = "SEGMENTER_CACHE_DIR"
MIRROR_ENV = "SEGMENTER_WEIGHTS_MIRROR"
REGISTRY_ENV = "SEGMENTER_WEIGHTS_REGISTRY"


def default_cache_dir() -> Path:
    """SEGMENTER_CACHE_DIR, else the user's cache directory (~/.cache/segmenter on Linux)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("segmenter"))


def cached_folder(entry: ZooEntry, cache_dir: Path) -> Path | None:
    """The converted folder of `entry` if a complete one is in the cache."""
    folder = cache_dir / "models" / entry.name
    try:
        provenance = json.loads((folder / META_FILE).read_text())["metadata"]["provenance"]
    except (OSError, ValueError, KeyError):
        return None
    return folder if provenance.get("zoo") == entry.name else None


def fetch_entry(entry: ZooEntry, cache_dir: Path, mirror: str | None = None,
                progress: Callable[[str, int, int | None], None] | None = None) -> Path:
    """Download, verify and convert `entry` into `cache_dir`; the folder. ZooError naming the URL."""
    if (folder := cached_folder(entry, cache_dir)) is not None:
        return folder
    downloads = cache_dir / "downloads" / entry.name
    hashes, urls = {}, []
    for file in entry.files:
        url = mirrored(file.url, mirror)
        urls.append(url)
        step: Progress | None = (lambda done, total, name=file.file_name: progress(name, done, total)) \
            if progress else None
        try:
            hashes[file.file_name] = download(url, downloads / file.file_name, file.sha256_prefix, step)
        except ZooError as exc:
            if mirror:  # the mirror failed: suggesting one would send the user round in circles
                raise ZooError(f"{exc}. That is the weights mirror {mirror} ({MIRROR_ENV}): check that it is up "
                               f"and serves the published file at {url}, or unset {MIRROR_ENV} to download from "
                               f"{file.url}; or run `segmenter weights fetch {entry.name}` on a connected machine "
                               f"and copy {cache_dir / 'models' / entry.name}") from None
            raise ZooError(f"{exc}. Without network here: run `segmenter weights fetch {entry.name}` on a "
                           f"connected machine and copy {cache_dir / 'models' / entry.name} (or set "
                           f"{MIRROR_ENV}=http://host:port/prefix to a mirror)") from None
    weights = downloads / entry.files[0].file_name  # the checkpoint; variant.yml (official) sits beside it
    target = cache_dir / "models" / entry.name
    convert_local_checkpoint(weights, target, zoo=entry.name, url=urls[0], published_miou=entry.miou,
                       zoo_source=entry.source, file_sha256=hashes, sha256=hashes[weights.name])  # hashed once
    shutil.rmtree(downloads, ignore_errors=True)
    return target


def fetch(name: str, cache_dir: str | os.PathLike | None = None, mirror: str | None = None,
          registry_files: list[str] | None = None,
          progress: Callable[[str, int, int | None], None] | None = None) -> Path:
    """`fetch_entry` by name, the registry (bundled + extra files) and defaults from the
    environment: SEGMENTER_CACHE_DIR, SEGMENTER_WEIGHTS_MIRROR, SEGMENTER_WEIGHTS_REGISTRY."""
    registry = load_registry(registry_files if registry_files is not None else extra_registries())
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    return fetch_entry(get_entry(name, registry), Path(cache_dir) if cache_dir else default_cache_dir(), mirror,
                       progress)


def extra_registries() -> list[str]:
    """SEGMENTER_WEIGHTS_REGISTRY: extra registry files, separated by os.pathsep."""
    value = os.environ.get(REGISTRY_ENV, "")
    return [p for p in value.split(os.pathsep) if p]
