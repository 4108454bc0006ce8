"""Images/s of Segmenter variants at 512×512 (batch 1 and the best batch), and the fraction of
the device's measured matmul peak that the model's FLOPs reach.

    python benchmarks/model_throughput.py                         # representative variants, CPU
    python benchmarks/model_throughput.py --variants all --device cuda --precision fp16

Random weights: speed does not depend on the values. FLOPs are counted by
torch.utils.flop_counter (matmuls, convolutions, attention matmuls) on one forward pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import describe_device, matmul_peak_flops, median_seconds  # noqa: E402
from model import build_segmenter, list_variants  # noqa: E402

DEFAULT_VARIANTS = ["Seg-T-Mask/16", "Seg-S-Mask/16", "Seg-B/32", "Seg-B-Mask/32", "Seg-B-Mask/16",
                    "Seg-B†-Mask/16", "Seg-L-Mask/16", "Seg-B/8"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def model_flops(net: torch.nn.Module, size: int, device: torch.device) -> int:
    """FLOPs of one image. Counted with the math attention backend: the flop counter does not
    see inside the fused CPU attention kernel and would leave the attention matmuls out."""
    x = torch.randn(1, 3, size, size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel([SDPBackend.MATH]), counter:
        net(x)
    return counter.get_total_flops()


def throughput(net, batch: int, size: int, device, precision: str, min_seconds: float) -> float:
    x = torch.randn(batch, 3, size, size, device=device)
    autocast = (contextlib.nullcontext() if precision == "fp32"
                else torch.autocast(device.type, dtype=DTYPES[precision]))

    def step():
        with torch.inference_mode(), autocast:
            net(x)

    return batch / median_seconds(step, device, warmup=1, repeats=3, min_seconds=min_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma list, or 'all'")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes tried for the best batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=list(DTYPES))
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time spent per measurement at least")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    device = torch.device(args.device)
    names = list_variants() if args.variants == "all" else [v.strip() for v in args.variants.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    peak = matmul_peak_flops(device, DTYPES[args.precision])
    print(f"device: {describe_device(device)}; torch {torch.__version__}; precision {args.precision}; "
          f"input {args.size}×{args.size}; measured matmul peak {peak / 1e9:.0f} GFLOP/s\n")
    print("| variant | GFLOPs/img | img/s batch 1 | best img/s (batch) | % of matmul peak |")
    print("|---|---:|---:|---:|---:|")
    results = []
    for name in names:
        net = build_segmenter(name, num_classes=150).to(device).eval()
        flops = model_flops(net, args.size, device)
        per_batch: dict[int, float] = {}
        for batch in batches:
            try:
                per_batch[batch] = throughput(net, batch, args.size, device, args.precision, args.min_seconds)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                break
            if batch > 1 and per_batch[batch] < 0.9 * max(per_batch.values()):
                break  # throughput is falling: larger batches will not be the best
        best_batch = max(per_batch, key=per_batch.get)
        best = per_batch[best_batch]
        fraction = flops * best / peak
        results.append(dict(variant=name, gflops=flops / 1e9, batch1=per_batch[batches[0]], best=best,
                            best_batch=best_batch, peak_fraction=fraction))
        print(f"| {name} | {flops / 1e9:.1f} | {per_batch[batches[0]]:.2f} | {best:.2f} ({best_batch}) "
              f"| {100 * fraction:.0f}% |", flush=True)
        del net
    if args.json:
        args.json.write_text(json.dumps(dict(device=describe_device(device), peak_flops=peak, results=results),
                                        indent=2))


if __name__ == "__main__":
    main()
