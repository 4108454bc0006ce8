"""CPU inference in reduced precision, side by side: speed and what it costs in accuracy.

Paths: PyTorch fp32 and bf16 (autocast, oneDNN); ONNX Runtime fp32 and int8 (static QDQ,
the linear layers' matmuls quantized, calibrated on the model's kind of images); OpenVINO fp32,
bf16 and int8 (NNCF, exactly as `segmenter export onnx --precision int8` makes it).

Speed: images/s of the window forward (B×3×ws×ws -> B×C×ws×ws logits, an owned tensor) at
batch 1 and 4. Accuracy: what the export's precision gate measures (`export.run_gate`): arg-max
agreement with PyTorch fp32 through the whole inference path (`Predictor`), on the demo models'
synthetic validation split (and their mIoU there), on the gate's photo-like synthetic scenes for
the others. The ADE20K variants have random weights here (the real ones need a download):
their agreement measures how an untrained net's near-ties flip under rounding, a pessimistic
bound, not its accuracy.

    python benchmarks/cpu_precision.py                                   # every variant below
    python benchmarks/cpu_precision.py --variants Seg-T-Mask/16 --authors-code /tmp/authors
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import describe_device, median_seconds  # noqa: E402
from benchmarks.official_speedup import authors_segmenter, official_kwargs  # noqa: E402
from export import (  # noqa: E402
    OnnxRuntimeRunner,
    OpenVinoRunner,
    calibration_windows,
    export_onnx,
    quantize_int8,
    read_calibration_images,
    read_exported,
    read_labelled,
    run_gate,
    synthetic_scene,
)
from model import ModelMetadata, Predictor, build_segmenter, load_segmenter  # noqa: E402
from model.inference import TorchForward  # noqa: E402
from testkit.official_segmenter import OfficialSegmenter, official_state_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMOS = {"demo-seg-t16": ROOT / "models" / "demo-seg-t16", "demo-seg-t32": ROOT / "models" / "demo-seg-t32"}
CPU = torch.device("cpu")


def ort_int8(exported, windows: np.ndarray, out: Path) -> Path:
    """ONNX Runtime's static QDQ quantization of the linear layers' matmuls (int8 weights per
    channel, uint8 activations): LayerNorm, softmax and the attention products stay fp32."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(exported.onnx_path))
    weights = {init.name for init in graph.graph.initializer}
    nodes = [n.name for n in graph.graph.node if n.op_type in ("MatMul", "Conv", "Gemm")
             and any(i in weights for i in n.input)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(windows[i : i + 1] for i in range(len(windows)))

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"images": item}

    out.mkdir(parents=True, exist_ok=True)
    (out / "segmenter.json").write_text((exported.folder / "segmenter.json").read_text())
    quantize_static(str(exported.onnx_path), str(out / "model.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    nodes_to_quantize=nodes, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def scenes_for(name: str, window: int) -> tuple[list[np.ndarray], list | None]:
    """(calibration images, labelled pairs or None) for a variant: the demo models' own synthetic
    data, photo-like synthetic scenes for the others (whose agreement the gate measures on its own
    synthetic scenes)."""
    if name in DEMOS:
        from training.data.synthetic import write_dataset

        root = Path(tempfile.mkdtemp()) / "synthetic"
        write_dataset(root, train=64, val=100, seed=0)
        return read_calibration_images(root / "images" / "train"), read_labelled(root)
    rng = np.random.default_rng(0)
    return [synthetic_scene(window, window, rng) for _ in range(16)], None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="Seg-T-Mask/16,Seg-B/32,demo-seg-t16,demo-seg-t32")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--authors-code", type=Path, help="a checkout of rstrudel/segmenter: also time their fp32 "
                        "forward on the same weights (ADE20K variants)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{describe_device(CPU)}, torch {torch.__version__}\n")
    print("| variant | path | " + " | ".join(f"img/s batch {b}" for b in batches)
          + " | pixels as fp32 | mIoU |")
    print("|---|---|" + "---:|" * (len(batches) + 2))
    for name in args.variants.split(","):
        if name in DEMOS:
            net = load_segmenter(DEMOS[name])
        else:
            torch.manual_seed(0)
            net = build_segmenter(name, num_classes=150).eval()
            net.metadata = ModelMetadata.for_dataset("ade20k", window_size=512)
        window = net.metadata.window_size
        calibration, labelled = scenes_for(name, window)
        reference = Predictor(net)
        with tempfile.TemporaryDirectory() as tmp:
            exported = read_exported(export_onnx(net, Path(tmp) / "fp32"))
            windows = calibration_windows(reference, calibration)
            paths: dict[str, Callable] = {
                "PyTorch fp32": TorchForward(net),
                "PyTorch bf16 (autocast)": TorchForward(net, precision="bf16"),
                "ONNX Runtime fp32": OnnxRuntimeRunner(exported),
                "ONNX Runtime int8 (QDQ)": OnnxRuntimeRunner(read_exported(ort_int8(exported, windows,
                                                                                   Path(tmp) / "ort8"))),
                "OpenVINO fp32": OpenVinoRunner(exported.onnx_path, "fp32"),
                "OpenVINO bf16": OpenVinoRunner(exported.onnx_path, "bf16"),
                "OpenVINO int8 (NNCF; other layers bf16)": OpenVinoRunner(quantize_int8(exported, windows), "bf16"),
            }
            if args.authors_code and name not in DEMOS:
                reimpl = OfficialSegmenter(official_kwargs(name, 150))
                reimpl.load_state_dict(net.state_dict())
                authors = authors_segmenter(args.authors_code, official_kwargs(name, 150)).eval()
                authors.load_state_dict(official_state_dict(reimpl), strict=True)
                paths = {"authors' code fp32": TorchForward(authors), **paths}
            for label, forward in paths.items():
                rates = []
                for batch in batches:
                    x = torch.randn(batch, 3, window, window)
                    rates.append(batch / median_seconds(lambda f=forward, x=x: f(x), CPU, repeats=5,
                                                        min_seconds=args.min_seconds))
                candidate = Predictor(None, metadata=net.metadata, forward=forward)
                gate = run_gate(reference, candidate, re.search(r"fp32|bf16|int8", label).group(), label, labelled)
                miou = "—" if gate.miou_candidate is None else f"{gate.miou_candidate:.2f}"
                print(f"| {name} | {label} | " + " | ".join(f"{r:.2f}" for r in rates)
                      + f" | {100 * gate.pixel_agreement:.2f}% | {miou} |", flush=True)


if __name__ == "__main__":
    main()
