"""`segmenter predict` and `segmenter variants`: the model package's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from model.batch import clashes, write_outputs
from model.inference.cost import DEFAULT_MAX_WINDOWS
from model.inference.forward import PRECISIONS
from model.inference.images import IMAGE_SUFFIXES, ImageError, read_image
from model.inference.predictor import parse_scale


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="segment an image or a folder of images",
        description="Write a palette PNG mask (pixel value = class id) per image, and overlays. Outputs keep "
        "each image's path relative to the input folder; two images that would share a name keep their "
        "suffix (x.jpg.png, x.png.png), so nothing is overwritten.",
    )
    p.add_argument("input", type=Path, help="an image file or a folder of images")
    p.add_argument("--checkpoint", required=True, help="our checkpoint folder or an official checkpoint.pth")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png with a legend")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of class colours (0..1)")
    p.add_argument("--multiscale", action="store_true", help="multi-scale + flip test-time augmentation")
    p.add_argument("--scale", type=parse_scale, default=None,
                   help="resize images to this short side before segmenting them, or none (as they are); "
                   "default: the checkpoint's test scale")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--batch-size", type=int, default=4, help="sliding windows per forward pass")
    p.add_argument("--max-windows", type=int, default=DEFAULT_MAX_WINDOWS,
                   help="refuse images that need more sliding windows (elongated or huge images, multi-scale); "
                   "0 for no limit")
    p.set_defaults(func=run_predict)

    v = subparsers.add_parser("variants", help="list the registered model variants")
    v.set_defaults(func=run_variants)

    c = subparsers.add_parser(
        "convert",
        help="convert a checkpoint (e.g. an official checkpoint.pth) to our folder format",
        description="Load any checkpoint load_segmenter reads and save it as safetensors + segmenter.json.",
    )
    c.add_argument("--checkpoint", required=True, help="official checkpoint.pth (variant.yml beside it) or our folder")
    c.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    c.set_defaults(func=run_convert)


def run_predict(args: argparse.Namespace) -> int:
    from model import Predictor, TooManyWindows, find_images, load_segmenter

    inputs = find_images(args.input)  # a missing input or checkpoint: cli.main reports it (exit 2)
    net = load_segmenter(args.checkpoint)
    for path in inputs.skipped:
        print(f"skipped {path}: not an image this command reads ({', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)
    if not inputs.images:
        print(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {args.input}", file=sys.stderr)
        return 2
    for name in clashes(inputs):
        print(f"note: {name} shares its name with another image; its outputs are {name}.png", file=sys.stderr)
    predictor = Predictor(net, device=args.device, precision=args.precision, batch_size=args.batch_size,
                          max_windows=args.max_windows or None)
    args.out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for path in tqdm(inputs.images, desc="segmenting", unit="img", disable=len(inputs.images) == 1):
        try:
            _segment_file(path, inputs.names[path], predictor, args)
        except (ImageError, OSError) as exc:
            failures.append(f"{path}: {exc}")
        except TooManyWindows as exc:
            failures.append(f"{path}: {exc} (--max-windows; 0 for no limit)")
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    done = len(inputs.images) - len(failures)
    print(f"wrote {done} mask(s) to {args.out}" + (f"; {len(failures)} image(s) failed" if failures else "")
          + (f"; {len(inputs.skipped)} file(s) skipped" if inputs.skipped else ""))
    return 1 if failures else 0


def _segment_file(path: Path, name: str, predictor, args: argparse.Namespace) -> None:
    """Segment one file and write its outputs. The cost is checked from the header first."""
    from model import image_size

    predictor.check_cost(*image_size(path), args.multiscale, scale=args.scale)
    rgb = read_image(path)
    mask = predictor.predict(rgb, multiscale=args.multiscale, scale=args.scale)
    write_outputs(args.out, name, rgb, mask, predictor.metadata, args.overlay, args.alpha)


def run_variants(args: argparse.Namespace) -> int:
    from model import get_variant, list_variants

    for name in list_variants():
        v = get_variant(name)
        c = v.config
        print(
            f"{name:16s} embed_dim={c.embed_dim:<5d} depth={c.depth:<3d} heads={c.num_heads:<3d} "
            f"patch={c.patch_size:<3d} decoder={c.decoder:17s} crop={c.image_size} "
            f"pretrained={v.pretrained_tag or '-'}"
        )
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from model import convert_checkpoint

    net = convert_checkpoint(args.checkpoint, args.out)
    meta = net.metadata
    print(f"wrote {args.out}: {net.config.embed_dim}-dim, depth {net.config.depth}, patch {net.config.patch_size}, "
          f"{net.config.decoder} decoder, {meta.num_classes} classes ({meta.dataset}), "
          f"window {meta.window_size}/{meta.window_stride}, test scale {meta.test_scale or 'none'}, "
          f"{meta.protocol} protocol")
    return 0
