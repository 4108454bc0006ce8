"""`segmenter eval` and `segmenter train`: the training package's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model.devices import PRECISION_NAMES, placing
from training.data import DATASETS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser("eval", help="mIoU of a checkpoint on a dataset (sliding window, optional TTA)",
                              description="Works under torchrun: each process takes a share of the images.")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--dataset", required=True, choices=list(DATASETS))
    e.add_argument("--data-root", required=True)
    e.add_argument("--split", default="val", choices=["train", "val"])
    e.add_argument("--multiscale", action="store_true", help="scales 0.5-1.75 with flips, probabilities averaged")
    e.add_argument("--scale", default=None,
                   help="override the checkpoint's test scale: a short side in pixels, or none (images as they are)")
    e.add_argument("--device", default="auto", help="auto (a GPU if there is one, else cpu), cpu, cuda, cuda:1, ...")
    e.add_argument("--precision", default="fp32", choices=PRECISION_NAMES)
    # model.inference.BLENDS, written out (it imports torch); tests/test_cli_startup.py checks they agree.
    e.add_argument("--blend", default="uniform", choices=["uniform", "linear", "gaussian"],
                   help="how overlapping windows are averaged: uniform (default: the paper's protocol), or "
                   "linear / gaussian, which fade each window toward its borders (fewer seams; "
                   "docs/benchmarks.md: Seams)")
    e.add_argument("--out", type=Path, help="folder for the per-class table, confusion.png and scores.json")
    e.set_defaults(func=run_eval)

    t = subparsers.add_parser("train", help="train a model (same as python training/train.py)",
                              description="Multi-GPU: torchrun --nproc_per_node N training/train.py --config ...")
    t.add_argument("--config", required=True, help="experiment YAML (training/configs/)")
    t.add_argument("--resume", nargs="?", const=True, default=False, metavar="auto",
                   help="continue from the newest saved state in run.out_dir (a folder with a config but no "
                        "state starts over from iteration 0); `--resume auto` also starts a new run when there is "
                        "nothing to resume, so the same command can be requeued (the default under torchrun "
                        "restarts and SLURM requeues)")
    t.add_argument("--overwrite", action="store_true", help="delete the run in run.out_dir and start it over")
    t.add_argument("--allow-config-change", action="store_true",
                   help="resume although the config differs from the run's saved config.yaml")
    t.add_argument("--stop-at", type=int, help="stop at this iteration (the schedule still spans the run)")
    t.add_argument("overrides", nargs="*", help="dotted key=value, e.g. optim.lr=5e-4 run.iterations=1000")
    t.set_defaults(func=run_train)


def run_eval(args: argparse.Namespace) -> int:
    from model import Predictor, load_segmenter, parse_scale
    from training import distributed
    from training.data.layouts import build_dataset
    from training.evaluate import confusion_image, evaluate

    try:  # before loading: a typo costs nothing
        args.scale = parse_scale(args.scale)
    except ValueError as exc:
        raise ValueError(f"--scale: {exc}") from None
    ctx = distributed.setup(args.device, spelled="--device {}")  # no such device: DeviceError, exit 2
    net = load_segmenter(args.checkpoint)  # errors here are reported by cli.main (exit 2)
    dataset = build_dataset(args.dataset, args.data_root, args.split)
    if len(dataset.class_names) != net.num_classes:
        raise ValueError(f"the checkpoint predicts {net.num_classes} classes but {args.dataset} has "
                         f"{len(dataset.class_names)}")
    with placing(str(ctx.device)):
        predictor = Predictor(net, device=ctx.device, precision=args.precision, blend=args.blend)
    scores = evaluate(predictor, dataset, multiscale=args.multiscale, scale=args.scale,
                      rank=ctx.rank, world_size=ctx.world_size, progress=ctx.is_main)
    distributed.teardown()
    if not ctx.is_main:
        return 0
    table = scores.table(dataset.class_names)
    print(table)
    print(f"\nmIoU {100 * scores.miou:.2f}  pixel accuracy {100 * scores.pixel_accuracy:.2f}  "
          f"({'multi-scale + flip' if args.multiscale else 'single scale'}, {args.blend} blend, {len(dataset)} images)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "classes.md").write_text(table + "\n")
        confusion_image(scores, dataset.class_names, args.out / "confusion.png")
        (args.out / "scores.json").write_text(json.dumps(
            {"miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy,
             "iou": [None if v != v else float(v) for v in scores.iou]}, indent=2))
    return 0


def run_train(args: argparse.Namespace) -> int:
    import os
    import shlex
    import sys

    from training.config import load_config
    from training.stop_signals import TrainingInterrupted
    from training.trainer import train

    overrides = list(args.overrides)
    if args.resume not in (True, False, "auto"):
        if "=" not in args.resume:  # `--resume X`: X is an override argparse gave to --resume
            raise ValueError(f"--resume takes no value or 'auto', got {args.resume!r}")
        overrides.insert(0, args.resume)
        args.resume = True
    cfg = load_config(args.config, overrides)  # a bad key or value stops here, before any data
    try:
        result = train(cfg, resume=args.resume, stop_at=args.stop_at, allow_config_change=args.allow_config_change,
                       overwrite=args.overwrite)
    except TrainingInterrupted as stopped:
        if os.environ.get("RANK", "0") == "0":
            script = Path(sys.argv[0]).name == "train.py"
            again = ["python", sys.argv[0]] if script else ["segmenter", "train"]
            again += ["--config", str(args.config), "--resume", *overrides]
            again += ["--stop-at", str(args.stop_at)] if args.stop_at else []
            torchrun = " (under torchrun: the same torchrun command with --resume)" if "LOCAL_RANK" in os.environ \
                else ""
            saved = "state saved" if stopped.checkpoint else "nothing to save yet"
            print(f"{stopped}\ncontinue with: {shlex.join(again)}{torchrun}\n"
                  f"(exit code {stopped.exit_code}: stopped on a signal, {saved})", file=sys.stderr)
        return stopped.exit_code
    if result:
        print(f"mIoU {100 * result['miou']:.2f} at iteration {result['iteration']} -> {cfg.run.out_dir}")
    return 0
