"""A synthetic dataset in the custom layout: textured shapes over noisy gradient backgrounds.

Five classes — background, stripes, dots, checks, rings — named by the texture drawn inside a
random shape (disk, bar or square). Each texture class also has its own hue family (reds,
greens, blues, yellows: like sky is usually blue), while backgrounds take any colour, so
finding objects needs texture and naming them is helped by colour; shape says nothing.
Why colour helps: the demo models must reach 0.80 mIoU in 15 CPU minutes from scratch. With
random colours, a tiny ViT confused stripes with wide rings and plateaued near 0.6 (0.59 after
2000 iterations); an earlier design whose classes depended on shape fared no better.
Deterministic for a seed. Used by the demo models and the tests.

    python -m training.data.synthetic --out data/synthetic      # 800 train + 100 val images, 160×160

`data.dataset: synthetic` in a config writes this dataset on first use (see training/configs/demo.yaml).
"""

from __future__ import annotations

import argparse
import colorsys
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

CLASSES = ["background", "stripes", "dots", "checks", "rings"]
PALETTE = [[40, 40, 40], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]]
TEXTURES = CLASSES[1:]
HUES = {"stripes": 0.0, "dots": 1 / 3, "checks": 2 / 3, "rings": 1 / 6}  # red, green, blue, yellow
SHAPES = ["disk", "bar", "square"]


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean pattern: True where the texture's second colour shows."""
    period = rng.uniform(9, 14)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)  # coordinates in a randomly rotated frame
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == "stripes":
        return np.sin(2 * np.pi * u / period) > 0
    if kind == "checks":
        return (np.sin(2 * np.pi * u / period) > 0) ^ (np.sin(2 * np.pi * v / period) > 0)
    if kind == "rings":  # concentric rings around a random centre
        cy, cx = rng.uniform(0, yy.shape[0]), rng.uniform(0, xx.shape[1])
        return np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period) > 0
    radius = rng.uniform(0.22, 0.3) * period  # dots
    du = (u + rng.uniform(0, period)) % period - period / 2
    dv = (v + rng.uniform(0, period)) % period - period / 2
    return du * du + dv * dv < radius * radius


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    """One colour as float RGB in 0..255 (hue wraps around 1)."""
    return 255.0 * np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def render(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (image H×W×3 uint8, mask H×W uint8) pair."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Background: smooth colour gradient plus blotchy noise (no stripes, no dots).
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (rng.uniform() * yy + rng.uniform() * xx) / (2 * size)
    image = c0 * (1 - t[..., None]) + c1 * t[..., None]
    coarse = rng.normal(0, 25, (size // 8 + 1, size // 8 + 1, 3))
    image += np.kron(coarse, np.ones((8, 8, 1)))[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 4)):
        shape, texture = rng.choice(SHAPES), rng.choice(TEXTURES)
        r = rng.uniform(0.15, 0.26) * size
        cy, cx = rng.uniform(r, size - r), rng.uniform(r, size - r)
        angle = rng.uniform(0, np.pi)
        along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        if shape == "disk":
            inside = along**2 + across**2 < r * r
        elif shape == "bar":  # a rotated rectangle about 3 times longer than wide
            inside = (np.abs(along) < 1.3 * r) & (np.abs(across) < 0.45 * r)
        else:  # a rotated square
            inside = (np.abs(along) < 0.85 * r) & (np.abs(across) < 0.85 * r)
        pattern = _texture(texture, yy, xx, rng)
        # A base colour from the class's hue family, the texture drawn as a darker/brighter pattern.
        base = _hsv_to_rgb(HUES[texture] + rng.uniform(-0.05, 0.05), rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.9))
        shade = rng.choice([0.3, 1.6])
        fill = np.where(pattern[..., None], np.clip(base * shade, 0, 255), base)
        image[inside] = fill[inside]
        mask[inside] = 1 + TEXTURES.index(texture)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_dataset(out: str | Path, train: int = 800, val: int = 100, size: int = 160, seed: int = 0,
                  splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Write ROOT/images/{train,val}/*.png, ROOT/masks/{train,val}/*.png and ROOT/classes.json.

    `splits`: the splits written; the others are still drawn, so `splits=("val",)` writes the
    same validation images as a full write (what evaluating the demo models needs).
    """
    root = Path(out)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        write = split in splits
        if write:
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for i in tqdm(range(count), desc=f"synthetic {split}", unit="img", disable=count < 50 or not write):
            image, mask = render(size, rng)
            if write:
                Image.fromarray(image).save(root / "images" / split / f"{i:05d}.png")
                Image.fromarray(mask).save(root / "masks" / split / f"{i:05d}.png")
    classes = [{"name": n, "color": c} for n, c in zip(CLASSES, PALETTE, strict=True)]
    (root / "classes.json").write_text(json.dumps({"classes": classes}, indent=2) + "\n")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"],
                        help="splits to write (--splits val: the validation images only, for evaluation)")
    args = parser.parse_args()
    print(write_dataset(args.out, args.train, args.val, args.size, args.seed, tuple(args.splits)))


if __name__ == "__main__":
    main()
