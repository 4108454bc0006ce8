"""Our forward vs the official implementation's forward, on the same weights.

The baseline is testkit/official_segmenter.py: a plain re-implementation of the
authors' forward (unfused attention, einops-style channels-last logits view before
upsampling), the same oracle the parity tests use. Both run in this process, interleaved,
so machine noise hits both alike; medians are reported.

    python benchmarks/official_speedup.py                       # Seg-T-Mask/16, 512×512, CPU
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import describe_device, synchronize  # noqa: E402
from model import build_segmenter, get_variant  # noqa: E402
from testkit.official_segmenter import OfficialSegmenter  # noqa: E402


def official_kwargs(name: str, num_classes: int) -> dict:
    cfg = get_variant(name).config
    return dict(image_size=(cfg.image_size, cfg.image_size), patch_size=cfg.patch_size, d_model=cfg.embed_dim,
                n_heads=cfg.num_heads, n_layers=cfg.depth, n_cls=num_classes, distilled=cfg.distilled,
                decoder=dict(name=cfg.decoder, n_layers=cfg.decoder_depth))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="Seg-T-Mask/16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = build_segmenter(args.variant, num_classes=150).to(device).eval()
    ref = OfficialSegmenter(official_kwargs(args.variant, 150)).to(device).eval()
    ref.load_state_dict(ours.state_dict())  # the same weights
    print(f"{args.variant} at {args.size}×{args.size} on {describe_device(device)}, torch {torch.__version__}\n")
    # Minor page faults per call: fresh memory the kernel maps and zeroes 4 KiB at a time. Ours
    # should equal the output tensor's pages; the rest of its time is compute (see docs).
    print("| batch | ours img/s | official img/s | speed-up | max abs Δlogits | page faults ours / official |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in [int(b) for b in args.batches.split(",")]:
        x = torch.randn(batch, 3, args.size, args.size, device=device)
        timings: dict[str, list[float]] = {"ours": [], "ref": []}
        faults: dict[str, list[int]] = {"ours": [], "ref": []}
        with torch.inference_mode():
            diff = (ours(x) - ref(x)).abs().max().item()  # also the warm-up
            for _ in range(args.repeats):
                for name, net in (("ours", ours), ("ref", ref)):
                    f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
                    net(x)
                    synchronize(device)
                    timings[name].append(time.perf_counter() - t0)
                    faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        t_ours, t_ref = statistics.median(timings["ours"]), statistics.median(timings["ref"])
        f_ours, f_ref = statistics.median(faults["ours"]), statistics.median(faults["ref"])
        print(f"| {batch} | {batch / t_ours:.2f} | {batch / t_ref:.2f} | {t_ref / t_ours:.2f}× | {diff:.1e} "
              f"| {f_ours:,.0f} / {f_ref:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
