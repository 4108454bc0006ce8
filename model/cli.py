"""`segmenter predict` and `segmenter variants`: the model package's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from model.batch import CocoResults, clashes, failure_reason, write_outputs
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
    p.add_argument("input", help="an image file or a folder of images; with --engine ray also a text file listing "
                   "paths or URIs, or a URI pyarrow reads (s3://bucket/prefix, gs://...)")
    p.add_argument("--checkpoint", required=True, help="our checkpoint folder or an official checkpoint.pth")
    p.add_argument("--out", required=True, help="output folder (--engine ray: one every node can write, or a URI)")
    p.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png with a legend")
    p.add_argument("--format", choices=["png", "coco"], default="png",
                   help="png: a mask PNG per image (pixel = class id); coco: one predictions.json for the folder "
                   "(COCO images, categories, per-class RLE annotations: pycocotools, FiftyOne, CVAT read it)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of class colours (0..1)")
    p.add_argument("--multiscale", action="store_true", help="multi-scale + flip test-time augmentation")
    p.add_argument("--scale", type=parse_scale, default=None,
                   help="resize images to this short side before segmenting them, or none (as they are); "
                   "default: the checkpoint's test scale")
    p.add_argument("--device", help="cpu (default), cuda, cuda:1, ... (--engine ray: see --gpus-per-worker)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--batch-size", type=int, default=4, help="sliding windows per forward pass")
    p.add_argument("--max-windows", type=int, default=DEFAULT_MAX_WINDOWS,
                   help="refuse images that need more sliding windows (elongated or huge images, multi-scale); "
                   "0 for no limit")
    ray = p.add_argument_group("scale-out", "segment on a Ray cluster: a pool of actors, each holding one model "
                               "(pip install -e '.[ray]'); outputs are the local engine's, file for file")
    ray.add_argument("--engine", choices=["local", "ray"], default="local")
    ray.add_argument("--address", help="the Ray cluster (default: RAY_ADDRESS, else a local one is started)")
    ray.add_argument("--workers", type=int, help=f"actors (default {RAY_DEFAULTS['workers']})")
    ray.add_argument("--gpus-per-worker", type=float, help="GPUs per actor (default 0: CPU actors)")
    ray.add_argument("--images-per-batch", type=int,
                     help=f"images an actor segments together, their windows batched (default "
                     f"{RAY_DEFAULTS['images_per_batch']})")
    p.set_defaults(func=run_predict)

    a = subparsers.add_parser(
        "attention", help="where the model looks: per-head attention maps of one token",
        description="The softmax attention of one encoder or decoder layer, for the token of a pixel (its "
        "patch) or of a class (decoder), as heat maps over the image per head: the paper's figure 6.")
    a.add_argument("image", type=Path)
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--layer", type=int, required=True, help="0-based layer of the encoder or the decoder")
    a.add_argument("--head", type=int, help="one head (default: a grid of every head)")
    token = a.add_mutually_exclusive_group(required=True)
    token.add_argument("--pixel", type=parse_pixel, help="X,Y of a pixel of the image: its patch's attention")
    token.add_argument("--class", dest="class_name", help="a class name or id: its decoder token's attention")
    a.add_argument("--part", choices=["encoder", "decoder"],
                   help="default: encoder for --pixel, decoder for --class (class tokens live there)")
    a.add_argument("--scale", type=parse_scale, default=None, help="as for predict (default: the test scale)")
    a.add_argument("--out", type=Path, required=True, help="output folder")
    a.set_defaults(func=run_attention)

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


RAY_OPTIONS = ("address", "workers", "gpus_per_worker", "images_per_batch")
RAY_DEFAULTS = {"workers": 2, "gpus_per_worker": 0.0, "images_per_batch": 4}


class PredictOptionError(ValueError):
    """An option that does not apply to the chosen engine (reported by cli.main, exit 2)."""


def run_predict(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return run_predict_ray(args)
    given = [f"--{name.replace('_', '-')}" for name in RAY_OPTIONS if getattr(args, name) is not None]
    if given:
        raise PredictOptionError(f"{', '.join(given)} only apply to --engine ray; add --engine ray or drop them")
    if "://" in args.input:
        raise PredictOptionError(f"{args.input} is a URI: the local engine reads local files; use --engine ray")
    args.input, args.out, args.device = Path(args.input), Path(args.out), args.device or "cpu"
    return run_predict_local(args)


def run_predict_ray(args: argparse.Namespace) -> int:
    from model.ray_predict import RayJob, run_ray

    if args.device is not None:
        raise PredictOptionError("--device does not apply to --engine ray: actors use a GPU when "
                                 "--gpus-per-worker is above 0, else the CPU")
    options = {name: getattr(args, name) if getattr(args, name) is not None else RAY_DEFAULTS[name]
               for name in RAY_DEFAULTS}
    job = RayJob(checkpoint=args.checkpoint, out=args.out, with_mask=args.format == "png", overlay=args.overlay,
                 coco=args.format == "coco", alpha=args.alpha, multiscale=args.multiscale, scale=args.scale,
                 precision=args.precision, batch_size=args.batch_size, max_windows=args.max_windows or None,
                 **options)
    result = run_ray(job, args.input, args.address)
    _print_skipped(result.skipped)
    _print_renamed(result.renamed)
    return _print_outcome(result.written, result.failures, result.skipped, job.coco, args.out,
                          f" on {len(result.nodes)} node(s)")


def _print_skipped(paths) -> None:
    for path in paths:
        print(f"skipped {path}: not an image this command reads ({', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)


def _print_renamed(names) -> None:
    for name in names:
        print(f"note: {name} shares its name with another image; its outputs are {name}.png", file=sys.stderr)


def _print_outcome(written: int, failures: list[str], skipped: list, coco: bool, out, where: str = "") -> int:
    """Each failure, then one summary line; the exit code (1 when an image failed)."""
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    masks = f"{written} mask(s)" + (" in predictions.json" if coco else "")
    print(f"wrote {masks} to {out}{where}" + (f"; {len(failures)} image(s) failed" if failures else "")
          + (f"; {len(skipped)} file(s) skipped" if skipped else ""))
    return 1 if failures else 0


def run_predict_local(args: argparse.Namespace) -> int:
    from model import Predictor, TooManyWindows, find_images, load_segmenter

    inputs = find_images(args.input)  # a missing input or checkpoint: cli.main reports it (exit 2)
    net = load_segmenter(args.checkpoint)
    _print_skipped(inputs.skipped)
    if not inputs.images:
        print(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {args.input}", file=sys.stderr)
        return 2
    _print_renamed(clashes(inputs))
    predictor = Predictor(net, device=args.device, precision=args.precision, batch_size=args.batch_size,
                          max_windows=args.max_windows or None)
    args.out.mkdir(parents=True, exist_ok=True)
    coco = CocoResults(predictor.metadata.class_names) if args.format == "coco" else None
    failures: list[str] = []
    for path in tqdm(inputs.images, desc="segmenting", unit="img", disable=len(inputs.images) == 1):
        try:
            mask = _segment_file(path, inputs.names[path], predictor, args)
            if coco is not None:
                coco.add(path.relative_to(inputs.root).as_posix(), mask)
        except (ImageError, OSError, TooManyWindows) as exc:
            failures.append(failure_reason(str(path), exc))
    if coco is not None:
        (args.out / "predictions.json").write_text(json.dumps(coco.document()))
    return _print_outcome(len(inputs.images) - len(failures), failures, inputs.skipped, coco is not None, args.out)


def _segment_file(path: Path, name: str, predictor, args: argparse.Namespace):
    """Segment one file, write its outputs and return its mask (H×W class ids). The cost is
    checked from the header first."""
    from model import image_size

    predictor.check_cost(*image_size(path), args.multiscale, scale=args.scale)
    rgb = read_image(path)
    mask = predictor.predict(rgb, multiscale=args.multiscale, scale=args.scale)
    write_outputs(args.out, name, rgb, mask, predictor.metadata, args.format == "png", args.overlay, args.alpha)
    return mask


def parse_pixel(text: str) -> tuple[int, int]:
    """"X,Y" -> (x, y) pixel coordinates."""
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y pixel coordinates such as 120,64, got {text!r}") from None
    return x, y


def one_class(text: str, metadata) -> int:
    """--class: a class name (any case) or id -> its id."""
    ids = metadata.class_ids(text)
    if len(ids) != 1:
        raise ValueError(f"--class takes one class, got {len(ids)} ({text!r})")
    return ids[0]


def run_attention(args: argparse.Namespace) -> int:
    from PIL import Image

    from model import Predictor, attention_picture, image_attention, load_segmenter

    net = load_segmenter(args.checkpoint)
    predictor = Predictor(net)
    part = args.part or ("decoder" if args.class_name is not None else "encoder")
    class_id = one_class(args.class_name, net.metadata) if args.class_name is not None else None
    result = image_attention(predictor, read_image(args.image), args.layer, part, args.pixel, class_id, args.scale)
    target = f"class-{class_id}" if class_id is not None else f"pixel-{args.pixel[0]}-{args.pixel[1]}"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.image.stem}_{part}{args.layer}_{target}.png"
    Image.fromarray(attention_picture(result, args.head)).save(path)
    print(f"wrote {path} ({result.maps.num_heads} heads, {result.image.shape[1]}×{result.image.shape[0]} as the "
          "model saw it)")
    return 0


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
