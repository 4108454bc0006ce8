"""The registry of public checkpoints (`registry.yaml`, a data file) and the URLs to fetch them from."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from model.errors import SegmenterError

SOURCES = ("mmsegmentation", "official", "custom")
STATUSES = ("available", "host-unreachable")


class ZooError(SegmenterError, ValueError):
    """An unknown name, a bad registry entry, or a download that failed: the message says which."""


@dataclass(frozen=True)
class ZooFile:
    url: str
    sha256_prefix: str | None  # checked after download, where known

    @property
    def file_name(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name


@dataclass(frozen=True)
class ZooEntry:
    name: str
    source: str  # mmsegmentation | official | custom
    architecture: str  # a variant name (Seg-B-Mask/16)
    dataset: str
    classes: int
    window: int
    stride: int
    test_scale: tuple[int, int] | None
    miou: dict[str, float | None]  # published: {single, multi}
    size_bytes: int | None  # the file's size as published; None where it is not
    license: str
    status: str  # available | host-unreachable
    note: str
    files: tuple[ZooFile, ...]
    # Where no size is published: the weights' size from the parameter count (× 4 bytes, fp32), an
    # estimate (`weights list` shows it as ~N MB); a file that also holds optimizer state is larger.
    size_estimate: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ZooEntry:
        if not isinstance(data, dict):
            raise ZooError(f"{where}: a registry entry must be a mapping, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        if unknown := sorted(set(data) - known):
            raise ZooError(f"{where}: unknown field(s) {unknown} in entry {data.get('name')!r}; known: {sorted(known)}")
        if missing := sorted(required - set(data)):
            raise ZooError(f"{where}: entry {data.get('name')!r} lacks {missing}")
        values = dict(data)
        values["files"] = tuple(ZooFile(str(f["url"]), f.get("sha256_prefix")) for f in data["files"])
        values["test_scale"] = tuple(data["test_scale"]) if data["test_scale"] else None
        entry = cls(**values)
        if entry.source not in SOURCES:
            raise ZooError(f"{where}: entry {entry.name!r}: source must be one of {SOURCES}, got {entry.source!r}")
        if entry.status not in STATUSES:
            raise ZooError(f"{where}: entry {entry.name!r}: status must be one of {STATUSES}, got {entry.status!r}")
        if not entry.files:
            raise ZooError(f"{where}: entry {entry.name!r} lists no files")
        return entry


def load_registry(extra: Sequence[str | os.PathLike] = ()) -> dict[str, ZooEntry]:
    """The bundled registry plus any extra registry files (your own entries); names are unique."""
    sources = [("model/zoo/registry.yaml", resources.files("model.zoo").joinpath("registry.yaml").read_text())]
    for path in extra:
        if not Path(path).is_file():
            raise ZooError(f"registry file {path} does not exist (SEGMENTER_WEIGHTS_REGISTRY)")
        sources.append((str(path), Path(path).read_text()))
    entries: dict[str, ZooEntry] = {}
    for where, text in sources:
        try:
            items = yaml.safe_load(text) or []
        except yaml.YAMLError as exc:
            raise ZooError(f"registry file {where} is not valid YAML: {exc}") from None
        if not isinstance(items, list):
            raise ZooError(f"registry file {where} must be a list of entries")
        for item in items:
            entry = ZooEntry.from_dict(item, where)
            if entry.name in entries:
                raise ZooError(f"{where}: {entry.name!r} is already in the registry")
            entries[entry.name] = entry
    return entries


def get_entry(name: str, registry: dict[str, ZooEntry]) -> ZooEntry:
    try:
        return registry[name]
    except KeyError:
        raise ZooError(f"no checkpoint named {name!r} in the registry; known: {', '.join(registry)} "
                       "(segmenter weights list)") from None


def mirrored(url: str, mirror: str | None) -> str:
    """`url` with its scheme and host replaced by `mirror` (http://host:port/prefix), path kept."""
    if not mirror:
        return url
    return mirror.rstrip("/") + urllib.parse.urlparse(url).path
