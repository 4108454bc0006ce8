"""`segmenter predict`: segment an image, a folder, a list or an object-store prefix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model import DEFAULT_MAX_WINDOWS
from model.devices import PRECISION_NAMES, check_device, placing

RAY_OPTIONS = ("address", "actors", "gpus_per_actor", "images_per_batch")
RAY_DEFAULTS = {"actors": 2, "gpus_per_actor": 0.0, "images_per_batch": 4}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="segment an image or a folder of images",
        description="Write, per image, the outputs asked for (the names of POST /segment's output=): mask "
        "(<name>.png, pixel value = class id), overlay (<name>_overlay.png, with a legend), json (<name>.json), "
        "confidence (<name>_confidence.png); and coco: one predictions.json for all. Outputs keep each image's "
        "path relative to the input folder; two images that would share a name keep their suffix "
        "(x.jpg.png, x.png.png), so nothing is overwritten.",
    )
    p.add_argument("input", help="an image file or a folder of images; with --engine ray also a text file listing "
                   "paths or URIs, or a URI pyarrow reads (s3://bucket/prefix, gs://...)")
    p.add_argument("--checkpoint", required=True, help="our checkpoint folder, an exported folder (its PyTorch "
                   "weights), an official checkpoint.pth (with variant.yml), an MMSegmentation .pth, or zoo:NAME "
                   "(segmenter weights list)")
    p.add_argument("--out", required=True, help="output folder (--engine ray: one every node can write, or a URI)")
    # model.outputs.OUTPUTS, written out: importing it (numpy, OpenCV) would slow every `segmenter` command's
    # start-up; tests/test_cli_startup.py checks that the two agree.
    p.add_argument("--output", help="comma-separated, from mask, overlay, json, confidence, coco (default: mask)")
    p.add_argument("--overlay", action="store_true", help="alias of --output mask,overlay (kept for one release)")
    p.add_argument("--format", choices=["png", "coco"],
                   help="alias: png = --output mask, coco = --output coco (kept for one release)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of class colours (0..1)")
    p.add_argument("--no-legend", dest="legend", action="store_false", help="overlay without a legend")
    p.add_argument("--overlay-format", choices=["png", "jpeg", "webp"], help="overlay: png (default), or jpeg "
                   "(<name>_overlay.jpg) or webp (<name>_overlay.webp): lossy, 6-20× smaller and 4-25× faster to "
                   "write for big photos; POST /segment's format=")
    p.add_argument("--polygons", action="store_true", help="json: add polygons per class")
    p.add_argument("--classes", help="only these classes, by name or id, comma-separated (e.g. person,car)")
    p.add_argument("--multiscale", action="store_true", help="multi-scale + flip test-time augmentation")
    p.add_argument("--scale", default=None,
                   help="resize images to this short side before segmenting them, or none (as they are); "
                   "default: the checkpoint's test scale")
    # model.inference.BLENDS, written out (it imports torch); tests/test_cli_startup.py checks they agree.
    p.add_argument("--blend", default="uniform", choices=["uniform", "linear", "gaussian"],
                   help="how overlapping windows are averaged: uniform (default: the paper's protocol), or "
                   "linear / gaussian, which fade each window toward its borders (fewer seams; "
                   "docs/benchmarks.md: Seams)")
    p.add_argument("--device", help="cpu (default), cuda, cuda:1, ... (--engine ray: see --gpus-per-actor)")
    p.add_argument("--precision", default="fp32", choices=PRECISION_NAMES)
    p.add_argument("--batch-size", type=int, default=4, help="sliding windows per forward pass")
    p.add_argument("--max-windows", type=int, default=DEFAULT_MAX_WINDOWS,
                   help="refuse images that need more sliding windows (elongated or huge images, multi-scale); "
                   "0 for no limit")
    ray = p.add_argument_group("scale-out", "segment on a Ray cluster: a pool of actors, each holding one model "
                               "(pip install -e '.[ray]'); outputs are the local engine's, file for file")
    ray.add_argument("--engine", choices=["local", "ray"], default="local")
    ray.add_argument("--address", help="the Ray cluster (default: RAY_ADDRESS, else a local one is started)")
    ray.add_argument("--actors", type=int,
                     help=f"Ray actors, each holding one model (default {RAY_DEFAULTS['actors']})")
    ray.add_argument("--gpus-per-actor", type=float, help="GPUs per actor (default 0: CPU actors)")
    # The names before 0.2, for one release (README: one word, one meaning).
    ray.add_argument("--workers", dest="old_actors", type=int, help=argparse.SUPPRESS)
    ray.add_argument("--gpus-per-worker", dest="old_gpus_per_actor", type=float, help=argparse.SUPPRESS)
    ray.add_argument("--images-per-batch", type=int,
                     help=f"images an actor segments together, their windows batched (default "
                     f"{RAY_DEFAULTS['images_per_batch']})")
    p.set_defaults(func=run_predict)


class PredictOptionError(ValueError):
    """An option that does not apply (reported by cli.main, exit 2)."""


def chosen_outputs(args: argparse.Namespace) -> tuple[str, ...]:
    """--output, or what the aliases --overlay and --format stand for."""
    from model.outputs import parse_outputs

    if args.output is not None:
        if args.overlay or args.format:
            raise PredictOptionError("--overlay and --format are aliases of --output: give --output alone "
                                     "(e.g. --output mask,overlay)")
        return parse_outputs(args.output)
    outputs = ["coco" if args.format == "coco" else "mask"] + (["overlay"] if args.overlay else [])
    if args.overlay or args.format:
        note_old_flag("--overlay/--format", f"--output {','.join(outputs)}")
    return parse_outputs(",".join(outputs))


def note_old_flag(old: str, new: str) -> None:
    print(f"note: {old} is kept for one release; write {new}", file=sys.stderr)


def old_ray_flags(args: argparse.Namespace) -> None:
    """--workers and --gpus-per-worker (before 0.2) as --actors and --gpus-per-actor, with a note."""
    for old, new in (("actors", "actors"), ("gpus_per_actor", "gpus-per-actor")):
        value = getattr(args, f"old_{old}")
        if value is not None:
            if getattr(args, old) is not None:
                raise PredictOptionError(f"--{new} and its old name given together; give --{new} only")
            setattr(args, old, value)
            note_old_flag("--workers" if old == "actors" else "--gpus-per-worker", f"--{new}")


def segment_options(args: argparse.Namespace):
    """The flags as the one options type (model.options.SegmentOptions): the checks of every caller."""
    from pydantic import ValidationError

    from model.options import SegmentOptions

    try:
        return SegmentOptions(scale=args.scale, multiscale=args.multiscale, classes=args.classes, alpha=args.alpha,
                              legend=args.legend, polygons=args.polygons, format=args.overlay_format)
    except ValidationError as exc:  # one line per flag, as a command line names them
        raise PredictOptionError("; ".join(f"--{e['loc'][0]}: {e['msg'].removeprefix('Value error, ')}"
                                           for e in exc.errors())) from None


def run_predict(args: argparse.Namespace) -> int:
    old_ray_flags(args)
    outputs, options = chosen_outputs(args), segment_options(args)  # checked once, before any loading
    if args.overlay_format is not None and "overlay" not in outputs:
        raise PredictOptionError(f"--overlay-format {args.overlay_format} applies to overlays, but --output is "
                                 f"{','.join(outputs)}; add overlay to --output, or drop --overlay-format")
    if args.engine == "ray":
        return run_predict_ray(args, outputs, options)
    given = [f"--{name.replace('_', '-')}" for name in RAY_OPTIONS if getattr(args, name) is not None]
    if given:
        raise PredictOptionError(f"{', '.join(given)} only apply to --engine ray; add --engine ray or drop them")
    if "://" in args.input:
        raise PredictOptionError(f"{args.input} is a URI: the local engine reads local files; use --engine ray")
    return run_predict_local(args, outputs, options)


def run_predict_local(args: argparse.Namespace, outputs: tuple[str, ...], options) -> int:
    from jobs.inputs import clashes, coco_file_clash, find_images
    from jobs.local_engine import run_local
    from jobs.per_image import ImageJob, model_name
    from model import IMAGE_SUFFIXES, Predictor, load_segmenter

    device = check_device(args.device or "cpu")  # before any loading: a GPU that is not there costs nothing
    inputs = find_images(Path(args.input))  # a missing input or checkpoint: cli.main reports it (exit 2)
    net = load_segmenter(args.checkpoint)
    job = ImageJob.for_model(outputs, options, net.metadata, model_name(args.checkpoint))
    print_skipped(inputs.skipped)
    if not inputs.images:
        print(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {args.input}", file=sys.stderr)
        return 2
    print_renamed(clashes(inputs), job.outputs)
    if clash := coco_file_clash(list(inputs.names.values()), job.outputs):
        raise PredictOptionError(clash)
    with placing(device):
        predictor = Predictor(net, device=device, precision=args.precision, batch_size=args.batch_size,
                              max_windows=args.max_windows or None, blend=args.blend)
    result = run_local(inputs, predictor, Path(args.out), job)
    return print_outcome(result.written, result.failures, inputs.skipped, job.outputs, args.out)


def run_predict_ray(args: argparse.Namespace, outputs: tuple[str, ...], options) -> int:
    from jobs.ray_engine import RayJob, run_ray

    if args.device is not None:
        raise PredictOptionError("--device does not apply to --engine ray: actors use a GPU when "
                                 "--gpus-per-actor is above 0, else the CPU")
    pool = {name: getattr(args, name) if getattr(args, name) is not None else RAY_DEFAULTS[name]
            for name in RAY_DEFAULTS}
    job = RayJob(checkpoint=args.checkpoint, out=args.out, outputs=outputs, options=options, precision=args.precision,
                 batch_size=args.batch_size, max_windows=args.max_windows or None, blend=args.blend, **pool)
    result = run_ray(job, args.input, args.address)
    print_skipped(result.skipped)
    print_renamed(result.renamed, job.outputs)
    return print_outcome(result.written, result.failures, result.skipped, job.outputs, args.out,
                         f" on {len(result.nodes)} node(s)")


def print_skipped(paths) -> None:
    from model import IMAGE_SUFFIXES

    for path in paths:
        print(f"skipped {path}: not an image this command reads ({', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)


def print_renamed(names, outputs: tuple[str, ...]) -> None:
    if set(outputs) == {"coco"}:  # predictions.json alone: no file is named after an image
        return
    for name in names:
        print(f"note: {name} shares its name with another image; its outputs keep the suffix in their names "
              f"({name}...)", file=sys.stderr)


def print_outcome(written: int, failures: list[str], skipped: list, outputs: tuple[str, ...], out,
                  where: str = "") -> int:
    """Each failure, then one summary line; the exit code (1 when an image failed)."""
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    kinds = ", ".join(o if o != "coco" else "predictions.json" for o in outputs)
    print(f"wrote the outputs ({kinds}) of {written} image(s) to {out}{where}"
          + (f"; {len(failures)} image(s) failed" if failures else "")
          + (f"; {len(skipped)} file(s) skipped" if skipped else ""))
    return 1 if failures else 0
