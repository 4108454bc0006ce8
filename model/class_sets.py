"""Bundled class names and palettes of the datasets the paper uses.

ADE20K (150), Pascal Context (59 + background = 60) and Cityscapes (19 train ids), stored as
JSON in `model/classes/` so training, export and the service read the same lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

DATASETS = ("ade20k", "pascal_context", "cityscapes")


@dataclass(frozen=True)
class ClassSet:
    dataset: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]  # RGB 0..255, one per class


@cache
def get_class_set(dataset: str) -> ClassSet:
    """Class names and colours of a bundled dataset ("ade20k", "pascal_context", "cityscapes")."""
    key = dataset.lower().replace("-", "_").replace(" ", "_")
    aliases = {"ade": "ade20k", "pascal": "pascal_context", "pcontext": "pascal_context"}
    key = aliases.get(key, key)
    if key not in DATASETS:
        raise KeyError(f"no bundled classes for dataset {dataset!r}; bundled: {', '.join(DATASETS)}")
    text = resources.files("model").joinpath("classes", f"{key}.json").read_text()
    data = json.loads(text)
    names = tuple(c["name"] for c in data["classes"])
    palette = tuple(tuple(int(v) for v in c["color"]) for c in data["classes"])
    return ClassSet(dataset=key, names=names, palette=palette)  # type: ignore[arg-type]


def default_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct, deterministic colours for classes without a palette (bit-reversal, as PASCAL VOC)."""
    colors = []
    for index in range(num_classes):
        r = g = b = 0
        c = index + 1  # skip black so class 0 stays visible on dark images
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)
