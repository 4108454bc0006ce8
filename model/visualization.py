"""Pictures of masks: palette PNGs, colour overlays, legends.

Inputs are numpy: masks H×W integer class ids, images H×W×3 uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Palette = Sequence[Sequence[int]]
# Classes that mean "nothing in particular": overlays leave the photo as it is there.
TRANSPARENT_NAMES = frozenset({"background", "unlabeled", "unlabelled", "void", "ignore", "other"})


def transparent_classes(class_names: Sequence[str]) -> tuple[int, ...]:
    """Ids of the background-like classes (by name), which an overlay does not paint."""
    return tuple(i for i, name in enumerate(class_names) if name.strip().lower() in TRANSPARENT_NAMES)


def _lookup(mask: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[mask] for a uint8 table of K entries (or K×3 colours): OpenCV's vectorised LUT for
    8-bit ids (a 12-MP mask in ~20 ms where numpy indexing takes ~95), numpy indexing otherwise."""
    if mask.dtype != np.uint8 or len(table) > 256 or mask.size == 0:
        return table[mask]
    import cv2  # here, not at import: the CLI's start-up stays free of it

    padded = np.zeros((256, *table.shape[1:]), np.uint8)
    padded[: len(table)] = table
    mask = np.ascontiguousarray(mask)
    if table.ndim == 1:
        return cv2.LUT(mask, padded)
    return cv2.LUT(cv2.merge([mask, mask, mask]), padded.reshape(256, 1, 3))


def colorize(mask: np.ndarray, palette: Palette) -> np.ndarray:
    """H×W class ids -> H×W×3 uint8 RGB using `palette` (one colour per class)."""
    table = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if mask.size and int(mask.max()) >= len(table):
        raise ValueError(f"mask has class id {int(mask.max())} but the palette has {len(table)} colours")
    return _lookup(mask, table)


def overlay(image: np.ndarray, mask: np.ndarray, palette: Palette, alpha: float = 0.5,
            transparent: Sequence[int] = ()) -> np.ndarray:
    """Blend class colours over the image: (1 - alpha)·image + alpha·colour, H×W×3 uint8.

    Pixels of the `transparent` classes (e.g. `transparent_classes(names)`: background) keep the
    image's own colours, so an overlay does not darken a photo where nothing was found.
    OpenCV's vectorised table lookups and `addWeighted` (rounding to nearest): a 12-MP overlay
    in ~40 ms, where float32 numpy took 400-550 ms (issue 27: big photos).
    """
    import cv2  # here, not at import: the CLI's start-up stays free of it

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"overlay takes an H×W×3 uint8 RGB image, got {image.dtype} of shape {image.shape}")
    if image.size == 0:
        return image.copy()
    image = np.ascontiguousarray(image)
    colours = colorize(mask, palette)  # also checks every id has a colour
    blended = cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)
    if len(transparent):
        keep = np.zeros(len(palette), dtype=np.uint8)
        keep[[t for t in transparent if 0 <= t < len(palette)]] = 1  # an id beyond them is in no pixel
        cv2.copyTo(image, _lookup(mask, keep), blended)  # 1 where the photo shows through
    return blended


def mask_to_image(mask: np.ndarray, palette: Palette) -> Image.Image:
    """A PNG-ready image whose pixel values are the class ids.

    Up to 256 classes: mode "P" with the palette attached (viewers show colours, readers get
    ids). Above, or when a value does not fit 8 bits (65535, "not selected" of a 256-class
    model): 16-bit greyscale ("I;16"), ids unchanged.
    """
    if len(palette) <= 256 and int(mask.max(initial=0)) < 256:
        img = Image.fromarray(mask.astype(np.uint8))  # "L"; putpalette turns it into "P"
        colours = [int(v) for colour in palette for v in colour]
        # A full 256-entry palette keeps the PNG 8-bit: with a short one Pillow writes fewer bits
        # per pixel, and ids beyond the palette (255: "not selected") would be cut to fit.
        img.putpalette(colours + [0] * (768 - len(colours)))
        return img
    return Image.fromarray(mask.astype(np.uint16))  # "I;16"


def legend_scale(height: int, width: int, rows: int = 0) -> float:
    """How much bigger than on a 640×480 picture a legend is drawn: the short side / 480, from 1
    to 8 (a 4000×3000 photo: 6.25, so its legend reads at the size a small picture's does), and
    no more than lets `rows` classes fit the picture's height."""
    scale = min(max(min(height, width) / 480, 1.0), 8.0)
    if rows:
        scale = min(scale, max(1.0, height / (18 * rows + 12)))
    return scale


def draw_legend(
    image: np.ndarray, class_ids: Sequence[int], names: Sequence[str], palette: Palette
) -> np.ndarray:
    """Append a legend (colour swatch + name per class in `class_ids`) to the right of `image`,
    its text and swatches sized to the picture (`legend_scale`): 10-pixel text up to 640×480,
    62-pixel text on a 4000×3000 photo."""
    unit = legend_scale(image.shape[0], image.shape[1], len(class_ids))
    font = ImageFont.load_default(size=round(10 * unit))  # scalable with FreeType (else one bitmap size)
    row, pad = int(18 * unit), int(6 * unit)  # rounded down: the rows fit the height legend_scale allows
    swatch, lift = round(12 * unit), round(2 * unit)
    width = swatch + max((int(font.getlength(names[i])) for i in class_ids), default=0) + 3 * pad + round(14 * unit)
    height = max(image.shape[0], pad * 2 + row * len(class_ids))
    canvas = Image.new("RGB", (image.shape[1] + width, height), (255, 255, 255))
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = image.shape[1] + pad
    for k, cls in enumerate(class_ids):
        y = pad + k * row
        draw.rectangle([x, y + lift, x + swatch, y + lift + swatch], fill=tuple(int(v) for v in palette[cls]),
                       outline=(0, 0, 0), width=max(1, round(unit)))
        draw.text((x + swatch + pad, y + lift), names[cls], fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


# A perceptually ordered dark-to-bright colour ramp (black, purple, red, orange, pale yellow).
_HEAT = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heatmap(values: np.ndarray) -> np.ndarray:
    """H×W floats -> H×W×3 uint8 colours, scaled from their own min (dark) to max (bright)."""
    low, high = float(values.min()), float(values.max())
    t = (values - low) / (high - low) if high > low else np.zeros_like(values, np.float32)
    position = np.clip(t, 0, 1) * (len(_HEAT) - 1)
    index = np.minimum(position.astype(int), len(_HEAT) - 2)
    frac = (position - index)[..., None]
    return np.clip(_HEAT[index] * (1 - frac) + _HEAT[index + 1] * frac + 0.5, 0, 255).astype(np.uint8)


def heatmap_grid(image: np.ndarray, maps: np.ndarray, titles: Sequence[str], alpha: float = 0.6,
                 columns: int = 4, marker: tuple[int, int] | None = None) -> np.ndarray:
    """Per-map heat overlays on `image` (H×W×3 uint8), tiled `columns` wide, each titled; the
    paper's figure 6. maps: K×H×W floats; marker: (x, y) drawn as a cross on every panel."""
    font = ImageFont.load_default()
    height, width = image.shape[:2]
    label = 16
    rows = -(-len(maps) // columns)
    cols = min(columns, len(maps))
    canvas = Image.new("RGB", (cols * (width + 4), rows * (height + label + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, (values, title) in enumerate(zip(maps, titles, strict=True)):
        blended = (1 - alpha) * image.astype(np.float32) + alpha * heatmap(values).astype(np.float32)
        panel = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8))
        if marker is not None:
            x, y = marker
            ImageDraw.Draw(panel).line([(x - 6, y), (x + 6, y)], fill=(0, 255, 255), width=2)
            ImageDraw.Draw(panel).line([(x, y - 6), (x, y + 6)], fill=(0, 255, 255), width=2)
        left, top = (k % cols) * (width + 4), (k // cols) * (height + label + 4)
        draw.text((left + 2, top + 2), title, fill=(0, 0, 0), font=font)
        canvas.paste(panel, (left, top + label))
    return np.asarray(canvas)
