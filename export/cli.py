"""`segmenter export {onnx,check,tensorrt,triton}` (also `python -m export ...`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from export.artifact import ENGINE_FILE, META_FILE, ExportError, read_exported
from model.devices import check_device

if TYPE_CHECKING:  # export.parity imports torch: `segmenter export --help` must not wait for it
    from export.parity import ParityReport


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a checkpoint to ONNX / TensorRT / Triton, with parity checks")
    sub = p.add_subparsers(dest="export_command", required=True, metavar="FORMAT")

    o = sub.add_parser("onnx", help="checkpoint -> ONNX (fixed window, dynamic batch) + parity check")
    o.add_argument("--checkpoint", required=True, help="our checkpoint folder, official checkpoint.pth or mmseg .pth")
    o.add_argument("--out", type=Path, required=True, help="export folder (model.onnx + segmenter.json)")
    o.add_argument("--window", type=int, help="window side the graph is fixed to (default: the checkpoint's)")
    o.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "int8"], default=["fp32"],
                   help="also make these reduced-precision variants for CPUs (OpenVINO), each kept only if it "
                   "passes the accuracy gate (>= 99%% of pixels as fp32; mIoU drop <= 0.5 with --eval-data)")
    o.add_argument("--calibration", type=Path, help="int8: a folder of images like those the model will segment")
    o.add_argument("--calibration-limit", type=int, default=64, help="int8: at most this many calibration images")
    o.add_argument("--eval-data", type=Path, help="a labelled dataset in the custom layout (images/val, masks/val): "
                   "the gate also compares mIoU")
    _add_thresholds(o)
    o.set_defaults(func=run_onnx)

    c = sub.add_parser("check", help="re-check an ONNX export against its PyTorch checkpoint")
    c.add_argument("--export-dir", type=Path, required=True, help="the folder `export onnx` wrote")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda", "tensorrt"], help="ONNX Runtime provider")
    _add_thresholds(c)
    c.set_defaults(func=run_check)

    t = sub.add_parser("tensorrt", help="ONNX export -> serialized TensorRT engine + parity vs ONNX Runtime")
    t.add_argument("--export-dir", type=Path, required=True, help="the folder `export onnx` wrote")
    t.add_argument("--fp16", action="store_true", help="FP16 engine (LayerNorm kept in FP32)")
    t.add_argument("--max-batch", type=int, default=8, help="largest batch of the optimization profile")
    t.add_argument("--out", type=Path, help=f"engine file (default: <export-dir>/{ENGINE_FILE})")
    _add_thresholds(t, rtol=5e-2, agreement=0.995)
    t.set_defaults(func=run_tensorrt)

    r = sub.add_parser("triton", help="ONNX export -> Triton Inference Server model repository (the logits model "
                       "and NAME_class_ids, class ids in-graph; docs/triton.md)")
    r.add_argument("--export-dir", type=Path, required=True, help="the folder `export onnx` wrote")
    r.add_argument("--out", type=Path, required=True, help="model repository folder")
    r.add_argument("--name", help="model name in the repository (default: the export folder's name)")
    r.add_argument("--platform", default="onnx", choices=["onnx", "tensorrt"])
    r.add_argument("--engine", type=Path,
                   help=f"TensorRT engine for --platform tensorrt (default: <export-dir>/{ENGINE_FILE})")
    r.add_argument("--max-batch", type=int, default=8)
    r.add_argument("--max-queue-delay-us", type=int, default=2000)
    r.add_argument("--cpu", action="store_true", help="instance_group KIND_CPU instead of KIND_GPU")
    r.add_argument("--checkpoint", help="the PyTorch checkpoint the class-id model is built from (default: the one "
                   "the export was made from, onnx.source in its segmenter.json)")
    r.add_argument("--no-class-ids", dest="class_ids", action="store_false",
                   help="only the logits model, not NAME_class_ids (B×ws×ws class ids, upsample + argmax in-graph)")
    r.add_argument("--min-agreement", type=float, default=0.999,
                   help="min fraction of the class-id model's pixels equal to PyTorch's argmax")
    r.set_defaults(func=run_triton)


def _add_thresholds(p: argparse.ArgumentParser, rtol: float = 1e-3, agreement: float = 0.999) -> None:
    p.add_argument("--rtol", type=float, default=rtol, help="max |Δlogits| relative to the largest logit")
    p.add_argument("--min-agreement", type=float, default=agreement, help="min fraction of equal arg-max pixels")


def _report(report: ParityReport, folder: Path, name: str) -> int:
    print(report.summary())
    (folder / f"parity_{name}.json").write_text(json.dumps({**report.__dict__, "passed": report.passed}, indent=2))
    return 0 if report.passed else 1


def _onnx_parity(args: argparse.Namespace, net, exported, device: str = "cpu") -> ParityReport:
    from export.onnxruntime_runner import OnnxRuntimeRunner, ort_providers
    from export.parity import compare_backends, parity_images, parity_windows, torch_reference

    runner = OnnxRuntimeRunner(exported, ort_providers(device, window=exported.window_size))
    windows = parity_windows(exported.metadata, exported.window_size)
    # At the graph's output (the patch grid; full size for a version-1 folder), then after the merge.
    reference = torch_reference(net, exported.logits_shape[1:], exported.window_size)
    return compare_backends(reference, runner, windows, reference_name="PyTorch fp32",
                            candidate_name=f"ONNX Runtime ({runner.providers[0]})", rtol=args.rtol,
                            min_agreement=args.min_agreement, metadata=exported.metadata,
                            images=parity_images(exported.window_size))


def _source(checkpoint: str, out) -> str:
    """The checkpoint an export came from, as its description records it: relative to the export
    folder (the two move together, e.g. models/), or zoo:NAME. `load_segmenter(export)` reads it."""
    if checkpoint.startswith("zoo:") or not Path(checkpoint).exists():
        return checkpoint
    return os.path.relpath(Path(checkpoint).resolve(), Path(out).resolve())


def run_onnx(args: argparse.Namespace) -> int:
    from export.onnx_export import export_onnx
    from model import load_segmenter

    reduced = [p for p in dict.fromkeys(args.precision) if p != "fp32"]
    if "int8" in reduced and args.calibration is None:  # before minutes of work, not after
        raise ExportError("--precision int8 needs --calibration DIR: a folder of images like those the model will "
                          "segment (e.g. its dataset's validation images)")
    net = load_segmenter(args.checkpoint)  # errors are reported by cli.main (exit 2)
    export_onnx(net, args.out, window_size=args.window, source=_source(str(args.checkpoint), args.out))
    exported = read_exported(args.out)
    report = _onnx_parity(args, net, exported)
    code = _report(report, args.out, "onnxruntime")
    if code:
        # Refuse to hand over a graph that does not match: without its description the folder
        # cannot be loaded by the service or Triton export; model.onnx stays for debugging.
        (args.out / META_FILE).unlink()
        print(f"error: the export does not match PyTorch; {args.out / META_FILE} was removed so it cannot be "
              "served. Report: parity_onnxruntime.json", file=sys.stderr)
        return code
    print(f"wrote {exported.onnx_path} (window {exported.window_size}, logits on the "
          f"{exported.logits_shape[1]}×{exported.logits_shape[2]} patch grid, dynamic batch, opset {exported.opset})")
    return _reduced_precisions(args, net, exported, reduced)


def _reduced_precisions(args: argparse.Namespace, net, exported, precisions: list[str]) -> int:
    from export.precision_gate import read_labelled
    from export.quantize import read_calibration_images
    from export.reduced_precision import make_reduced_precision

    if not precisions:
        return 0
    calibration = (read_calibration_images(args.calibration, args.calibration_limit)
                   if args.calibration and "int8" in precisions else None)  # only int8 is calibrated
    labelled = read_labelled(args.eval_data) if args.eval_data else None
    code = 0
    for precision in precisions:
        report = make_reduced_precision(net, exported, precision, calibration, labelled)
        print(report.summary())
        if not report.passed:
            code = 1
            print(f"error: the {precision} variant is not accurate enough and was not kept (figures: "
                  f"{exported.folder / f'gate_{precision}.json'}); serve fp32, or try another precision",
                  file=sys.stderr)
    return code


def run_check(args: argparse.Namespace) -> int:
    from model import load_segmenter

    check_device(args.device, gpu_names=("tensorrt",))  # before loading: ONNX Runtime would fall back to the CPU
    exported = read_exported(args.export_dir)
    report = _onnx_parity(args, load_segmenter(args.checkpoint), exported, args.device)
    return _report(report, args.export_dir, "onnxruntime")


def run_tensorrt(args: argparse.Namespace) -> int:
    import torch

    from export.onnxruntime_runner import OnnxRuntimeRunner, ort_providers
    from export.parity import compare_backends, parity_images, parity_windows
    from export.tensorrt_engine import TensorRTRunner, build_engine

    exported = read_exported(args.export_dir)  # errors are reported by cli.main (exit 2)
    engine = build_engine(exported, args.out, fp16=args.fp16, max_batch=args.max_batch)
    reference = OnnxRuntimeRunner(exported, ort_providers("cuda" if torch.cuda.is_available() else "cpu"))
    windows = parity_windows(exported.metadata, exported.window_size)
    report = compare_backends(reference, TensorRTRunner(engine, exported.num_classes), windows,
                              reference_name=f"ONNX Runtime ({reference.providers[0]})",
                              candidate_name=f"TensorRT {'fp16' if args.fp16 else 'fp32'}",
                              rtol=args.rtol, min_agreement=args.min_agreement, batch_size=args.max_batch,
                              metadata=exported.metadata, images=parity_images(exported.window_size))
    code = _report(report, exported.folder, "tensorrt")
    if code:
        engine.unlink()
        print(f"error: the engine does not match ONNX Runtime and was deleted ({engine})", file=sys.stderr)
    else:
        print(f"wrote {engine}")
    return code


def run_triton(args: argparse.Namespace) -> int:
    import shutil

    from export.artifact import ONNX_FILE
    from export.triton import CLASS_IDS_SUFFIX, class_ids_agreement, source_segmenter, write_triton_repository
    from model import load_segmenter

    exported = read_exported(args.export_dir)  # errors are reported by cli.main (exit 2)
    net = None
    if args.class_ids:  # the checkpoint the class-id model is built from, before writing anything
        net = load_segmenter(args.checkpoint) if args.checkpoint else source_segmenter(exported)
    folder = write_triton_repository(exported, args.out, name=args.name, platform=args.platform,
                                      engine=args.engine, max_batch_size=args.max_batch,
                                      max_queue_delay_us=args.max_queue_delay_us, gpu=not args.cpu,
                                      class_ids=args.class_ids, net=net)
    print(f"wrote {folder} (logits B×{'×'.join(map(str, exported.logits_shape))})")
    if args.class_ids:
        from export.parity import parity_windows

        class_dir = folder.with_name(folder.name + CLASS_IDS_SUFFIX)
        windows = parity_windows(exported.metadata, exported.window_size)
        agreement = class_ids_agreement(net, class_dir / "1" / ONNX_FILE, windows)
        verdict = "PASS" if agreement >= args.min_agreement else "FAIL"
        print(f"{verdict}: {class_dir.name} (ONNX Runtime) vs PyTorch's argmax on {len(windows)} windows: "
              f"{100 * agreement:.3f}% of pixels agree (limit {100 * args.min_agreement:g}%)")
        if verdict == "FAIL":
            shutil.rmtree(class_dir)
            print(f"error: the class-id model does not match PyTorch and was removed ({class_dir})", file=sys.stderr)
            return 1
        print(f"wrote {class_dir} (class_ids B×{exported.window_size}×{exported.window_size})")
    print(f"serve with: tritonserver --model-repository {args.out}")
    return 0
