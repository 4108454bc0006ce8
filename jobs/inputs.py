"""Which files a folder job reads, and the name each image's outputs take.

- every file with an image suffix under the input (recursively) is read; other files are listed
  as skipped, never silently passed over (hidden files, such as .DS_Store, excepted);
- an image's outputs keep its path relative to the input folder, suffix dropped
  (`a/x.jpg` -> `a/x.png`, `a/x_overlay.png`); when two images would share a name (`x.jpg` and
  `x.png` side by side) both keep their suffix (`x.jpg.png`, `x.png.png`): nothing is overwritten.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from model import list_images


@dataclass(frozen=True)
class Inputs:
    root: Path  # names are relative to this folder
    images: list[Path]
    skipped: list[Path] = field(default_factory=list)  # files that are not images this package reads
    names: dict[Path, str] = field(default_factory=dict)  # image -> output name (no suffix)


def find_images(path: Path) -> Inputs:
    """The images under `path` (a file or a folder), their output names, and the skipped files."""
    path = Path(path)
    images, skipped = list_images(path)
    if path.is_file():
        return Inputs(path.parent, images, [], {path: path.stem})
    return Inputs(path, images, skipped, output_names(images, path))


def output_names(images: list[Path], root: Path) -> dict[Path, str]:
    """Image -> its output name: the path relative to `root` without the suffix, or with it when
    another image would get the same name."""
    names = relative_names([image.relative_to(root).as_posix() for image in images])
    return dict(zip(images, names, strict=True))


def relative_names(relative: list[str]) -> list[str]:
    """Output names for images given by their relative posix paths (`a/x.jpg` -> `a/x`, or
    `a/x.jpg` when another image would also become `a/x`)."""
    stems = [PurePosixPath(path).with_suffix("").as_posix() for path in relative]
    taken = Counter(stems)
    return [path if taken[stem] > 1 else stem for path, stem in zip(relative, stems, strict=True)]


def clashes(inputs: Inputs) -> list[str]:
    """The images whose names kept their suffix, to tell the user why."""
    return [inputs.names[image] for image in inputs.images
            if inputs.names[image] != image.relative_to(inputs.root).with_suffix("").as_posix()]


def coco_file_clash(names: list[str], outputs: tuple[str, ...]) -> str | None:
    """The message when an image's JSON output would overwrite the COCO file (`predictions.json`
    at the top of the output folder), else None: nothing is overwritten."""
    if "coco" in outputs and "json" in outputs and "predictions" in names:
        return ("an image named predictions.* at the top of the input would write predictions.json, the COCO file; "
                "drop json or coco from --output, or rename that image")
    return None
