"""ONNX Runtime vs PyTorch images/s for the exported window graph (512×512 by default).

    python benchmarks/onnx_vs_pytorch.py                                  # CPU, Seg-T-Mask/16 and Seg-B/32
    python benchmarks/onnx_vs_pytorch.py --device cuda --variants Seg-B-Mask/16

Random weights (speed does not depend on them); the graph is exported exactly as
`segmenter export onnx` does, into a temporary folder. Both sides answer on the patch grid (the
window forward every backend runs; the merge upsamples).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import describe_device, median_seconds  # noqa: E402
from export import OnnxRuntimeRunner, export_onnx, ort_providers, read_exported  # noqa: E402
from model import ModelMetadata, build_segmenter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="Seg-T-Mask/16,Seg-B/32")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--min-seconds", type=float, default=3.0)
    args = parser.parse_args()

    device = torch.device(args.device)
    print(f"{describe_device(device)}, torch {torch.__version__}, input {args.size}×{args.size}, fp32\n")
    print("| variant | batch | PyTorch img/s | ONNX Runtime img/s | ORT / PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for name in args.variants.split(","):
        net = build_segmenter(name.strip(), num_classes=150).eval()
        net.metadata = ModelMetadata.for_dataset("ade20k", window_size=args.size)
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(net, tmp)
            runner = OnnxRuntimeRunner(read_exported(tmp), ort_providers(args.device))
            net = net.to(device)
            for batch in [int(b) for b in args.batches.split(",")]:
                x = torch.randn(batch, 3, args.size, args.size)
                xd = x.to(device)

                def torch_step(net=net, xd=xd):  # the same work as the graph: logits on the patch grid
                    with torch.inference_mode():
                        net.forward_patches(xd)

                t_torch = median_seconds(torch_step, device, repeats=3, min_seconds=args.min_seconds)
                t_ort = median_seconds(lambda r=runner, x=x: r(x), device, repeats=3, min_seconds=args.min_seconds)
                print(f"| {name} | {batch} | {batch / t_torch:.2f} | {batch / t_ort:.2f} | {t_torch / t_ort:.2f}× |",
                      flush=True)


if __name__ == "__main__":
    main()
