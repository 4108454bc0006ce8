"""Where a batch job's images come from and where its outputs go: local paths or URIs.

A job's INPUT is one of
- a local folder or image (`find_images`: recursive, non-images listed as skipped);
- a list file (`.txt`, `.lst`): one local path (relative to the list's folder) or URI per line,
  `#` comments; output names are the entries' paths below their common folder;
- a URI that pyarrow's filesystems read (`s3://bucket/prefix?region=...`, `gs://...`,
  `hdfs://host:port/...`, `file:///...`): every image below it, or the one object it names.

For a URI folder the filesystem is made once, from the URI as the user wrote it (its host, port
and query options kept), and images are addressed by their paths inside it — never by a URI
rebuilt from a path, which would break on spaces, `#`, `?` or `%` in object names.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from jobs.inputs import find_images
from model import IMAGE_SUFFIXES, SegmenterError

PARTIAL = ".partial"  # suffix of a local file being written; renamed away when complete
LIST_SUFFIXES = (".txt", ".lst")


class InputError(SegmenterError, ValueError):
    """INPUT names nothing to segment, or names it ambiguously; the message says what to change."""


def is_uri(text: str) -> bool:
    return "://" in text


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class ImageRef:
    location: str  # what `Reader.read` takes: a local path, a path inside the source's filesystem, or a URI
    relative: str  # its path below the input, as outputs are named
    display: str  # how messages name it


@dataclass
class Listing:
    images: list[ImageRef]
    skipped: list[str] = field(default_factory=list)  # files that are not images
    filesystem_uri: str | None = None  # a URI folder: `location`s are paths inside its filesystem


def list_inputs(source: str) -> Listing:
    """The images of INPUT (see the module docstring). Raises InputError when there are none."""
    if is_uri(source):
        listing = _list_uri(source)
    elif Path(source).is_file() and Path(source).suffix.lower() in LIST_SUFFIXES:
        listing = _list_file(Path(source))
    else:
        inputs = find_images(Path(source))  # a missing path: FileNotFoundError, reported by the CLI
        listing = Listing([ImageRef(str(p.resolve()), p.relative_to(inputs.root).as_posix(), str(p))
                           for p in inputs.images], [str(p) for p in inputs.skipped])
    if not listing.images:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    return listing


def _list_uri(source: str) -> Listing:
    from pyarrow import fs

    try:
        filesystem, root = fs.FileSystem.from_uri(source)
    except ValueError as exc:  # pyarrow.ArrowInvalid: not a URI it parses
        raise InputError(f"{source}: {exc} (percent-encode spaces, '#' and '?' in a URI's path)") from exc
    info = filesystem.get_file_info(root)
    base = source.split("?", 1)[0].rstrip("/")
    if info.type == fs.FileType.File:  # the URI names one object
        return Listing([ImageRef(root, PurePosixPath(root).name, base)], [], source)
    if info.type == fs.FileType.NotFound:
        raise InputError(f"{source} does not exist (or is not readable with this host's credentials)")
    infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    files = sorted(i.path for i in infos if i.type == fs.FileType.File)
    relative = {f: PurePosixPath(f).relative_to(root).as_posix() for f in files}
    images = [ImageRef(f, relative[f], f"{base}/{relative[f]}") for f in files if _is_image(f)]
    return Listing(images, [f"{base}/{relative[f]}" for f in files if not _is_image(f)], source)


def _list_file(path: Path) -> Listing:
    lines = [line.strip() for line in path.read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    # Local entries are relative to the list's folder, as the list's author sees them.
    entries = [e if is_uri(e) else str((path.parent / e).resolve()) for e in entries]
    repeated = [e for e, n in Counter(entries).items() if n > 1]
    if repeated:
        raise InputError(f"{path} lists {len(repeated)} image(s) more than once (e.g. {repeated[0]}): "
                         "remove the repeats, so that each output is written once")
    paths = [e.split("://", 1)[-1].split("?", 1)[0] for e in entries]
    common = os.path.commonpath(paths) if len(paths) > 1 else str(PurePosixPath(paths[0]).parent)
    relative = [PurePosixPath(os.path.relpath(p, common)).as_posix() for p in paths]
    clashing = [r for r, n in Counter(relative).items() if n > 1]
    if clashing:
        raise InputError(f"{path}: two entries would both be written as {clashing[0]} (same path on different "
                         "hosts or buckets); segment them in separate runs")
    images = [ImageRef(e, r, e) for e, r in zip(entries, relative, strict=True) if _is_image(r)]
    return Listing(images, [e for e, r in zip(entries, relative, strict=True) if not _is_image(r)])


class Reader:
    """Reads image bytes by `Image.location`; a URI folder's filesystem is made once."""

    def __init__(self, filesystem_uri: str | None) -> None:
        self.filesystem = None
        if filesystem_uri is not None:
            from pyarrow import fs

            self.filesystem = fs.FileSystem.from_uri(filesystem_uri)[0]

    def read(self, location: str) -> bytes:
        if self.filesystem is not None:
            with self.filesystem.open_input_file(location) as f:
                return f.read()
        if is_uri(location):  # a list file's entry, a URI as its author wrote it
            from pyarrow import fs

            filesystem, path = fs.FileSystem.from_uri(location)
            with filesystem.open_input_file(path) as f:
                return f.read()
        return Path(location).read_bytes()


class Output:
    """Writes files under OUT (a local folder or a URI), each complete or not at all: local files
    go to a temporary name and are renamed; object stores publish an object only when closed."""

    def __init__(self, out: str) -> None:
        self.filesystem, self.root = None, out
        if is_uri(out):
            from pyarrow import fs

            self.filesystem, self.root = fs.FileSystem.from_uri(out)

    def write(self, relative: str, data: bytes) -> None:
        if self.filesystem is not None:
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

    def remove_partials(self) -> None:
        """Files an actor was writing when it died (its batch was retried and wrote them again)."""
        if self.filesystem is None and Path(self.root).is_dir():
            for partial in Path(self.root).rglob(f"*{PARTIAL}"):
                partial.unlink(missing_ok=True)
