"""Preprocessing and labelling facts that travel with the weights.

Everything that training, export and the service must agree on about *using* a model lives
here, in the checkpoint, so they cannot drift apart: class names and colours, the input
normalization, the sliding-window size and stride, where the weights came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from model.class_sets import default_palette, get_class_set

# Mean/std on 0..1 RGB. "vit": Google ViT / AugReg weights (official Segmenter default);
# "deit": ImageNet statistics (DeiT backbones, Seg-B†).
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "deit": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# The keep-ratio test scale (long, short) the authors evaluate each bundled dataset at: their
# data configs' (max_ratio × im_size, im_size). Test images are resized into it, up or down,
# before sliding windows (the paper's mIoU is measured that way).
TEST_SCALES: dict[str, tuple[int, int]] = {"ade20k": (2048, 512), "pascal_context": (4160, 520),
                                           "cityscapes": (2048, 1024)}

Protocol = Literal["official", "mmseg"]


@dataclass(frozen=True)
class ModelMetadata:
    """How to feed a model and read its output.

    Attributes:
        class_names: one name per output channel.
        palette: one RGB colour (0..255) per class.
        mean, std: per-channel normalization of 0..1 RGB input: x = (rgb/255 - mean) / std.
        window_size: side of the square sliding window (usually the training crop).
        window_stride: step between windows (<= window_size).
        dataset: the dataset the classes come from ("ade20k", "custom", ...).
        test_scale: (long, short): images are resized, keeping their ratio, to the largest size
            with long side <= long and short side <= short (up or down) before sliding windows,
            as the model was evaluated; None: images are used at their own size.
        protocol: how an image becomes windows. "official" (the authors' code): a view whose
            short side is below the window is upscaled to it. "mmseg": it runs as one smaller
            window (and the model resizes patch logits straight to the window's size).
        provenance: free-form facts about where the weights came from (source file, run, date).
        patch_size, output_resize: how the model's patch-grid logits become pixels (its config's;
            filled in by `Segmenter` and by exported folders): window forwards return logits on
            the patch grid, and the merge upsamples them as the model would (`logits_grid`).
    """

    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    mean: tuple[float, float, float] = NORMALIZATIONS["vit"][0]
    std: tuple[float, float, float] = NORMALIZATIONS["vit"][1]
    window_size: int = 512
    window_stride: int = 512
    dataset: str = "custom"
    test_scale: tuple[int, int] | None = None
    protocol: Protocol = "official"
    provenance: dict[str, Any] = field(default_factory=dict)
    patch_size: int | None = None
    output_resize: str | None = None  # "upsample_crop" (the authors') | "resize" (mmseg)

    def __post_init__(self) -> None:
        problems = []
        if len(self.palette) != len(self.class_names):
            problems.append(f"{len(self.palette)} palette colours for {len(self.class_names)} classes")
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in self.palette):
            problems.append("palette colours must be [r, g, b] with values in 0..255")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            problems.append("mean and std need 3 values each, std > 0")
        if self.test_scale is not None and (len(self.test_scale) != 2 or min(self.test_scale) < 1):
            problems.append(f"test_scale must be [long, short] in pixels or null, got {self.test_scale!r}")
        if self.protocol not in ("official", "mmseg"):
            problems.append(f"protocol must be 'official' or 'mmseg', got {self.protocol!r}")
        if self.output_resize not in (None, "upsample_crop", "resize"):
            problems.append(f"output_resize must be 'upsample_crop' or 'resize', got {self.output_resize!r}")
        if self.patch_size is not None and self.patch_size < 1:
            problems.append(f"patch_size must be >= 1, got {self.patch_size}")
        if not 0 < self.window_stride <= self.window_size:
            problems.append(
                f"window_stride must be in 1..window_size ({self.window_size}), got {self.window_stride}"
            )
        if problems:
            raise ValueError("invalid ModelMetadata: " + "; ".join(problems))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def logits_grid(self):
        """The `model.logits_grid.LogitsGrid` of this model's window logits."""
        from model.logits_grid import LogitsGrid  # torch: only when inference needs it

        return LogitsGrid(self.patch_size, self.output_resize or "upsample_crop")

    @classmethod
    def for_dataset(
        cls,
        dataset: str,
        normalization: str = "vit",
        window_size: int = 512,
        window_stride: int | None = None,
        **kwargs: Any,
    ) -> ModelMetadata:
        """Metadata with a bundled dataset's classes ("ade20k", "pascal_context", "cityscapes") and
        its test scale (override with test_scale=)."""
        classes = get_class_set(dataset)
        mean, std = normalization_stats(normalization)
        kwargs.setdefault("test_scale", TEST_SCALES[classes.dataset])
        return cls(
            class_names=classes.names,
            palette=classes.palette,
            mean=mean,
            std=std,
            window_size=window_size,
            window_stride=window_stride or window_size,
            dataset=classes.dataset,
            **kwargs,
        )

    @classmethod
    def for_classes(cls, class_names: list[str] | tuple[str, ...], **kwargs: Any) -> ModelMetadata:
        """Metadata for custom classes; colours default to a distinct palette."""
        palette = kwargs.pop("palette", None) or default_palette(len(class_names))
        kwargs.setdefault("window_stride", kwargs.get("window_size", 512))  # no overlap unless asked
        return cls(class_names=tuple(class_names), palette=tuple(map(tuple, palette)), **kwargs)

    def class_ids(self, text: str) -> tuple[int, ...]:
        """Classes named in `text` ("cat,dog", "3,7", or both mixed; names in any case) -> sorted ids.

        The one class-name resolver of the CLI, the service and the Python API. ValueError naming
        an unknown class and where the classes are listed.
        """
        by_name = {name.strip().lower(): i for i, name in enumerate(self.class_names)}
        ids = set()
        for item in (part.strip() for part in text.split(",")):
            if item.isdigit() and int(item) < self.num_classes:
                ids.add(int(item))
            elif item.lower() in by_name:
                ids.add(by_name[item.lower()])
            else:
                known = ", ".join(self.class_names[:20]) + (" ..." if self.num_classes > 20 else "")
                raise ValueError(f"unknown class {item!r}; give names or ids 0..{self.num_classes - 1} "
                                 f"(this model's classes: {known})")
        return tuple(sorted(ids))

    def replace(self, **changes: Any) -> ModelMetadata:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["class_names"] = list(self.class_names)
        data["palette"] = [list(c) for c in self.palette]
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["test_scale"] = list(self.test_scale) if self.test_scale else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelMetadata field(s) {unknown}; known fields are {sorted(known)}")
        data = dict(data)
        data["class_names"] = tuple(data["class_names"])
        data["palette"] = tuple(tuple(int(v) for v in c) for c in data["palette"])
        for key in ("mean", "std"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        if data.get("test_scale") is not None:
            data["test_scale"] = tuple(int(v) for v in data["test_scale"])
        return cls(**data)


def normalization_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (0..1 RGB) of a named normalization ("vit" or "deit")."""
    try:
        return NORMALIZATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown normalization {name!r}; known: {', '.join(NORMALIZATIONS)}"
        ) from None
