"""Our forward vs the authors' forward, on the same weights, timed to class ids.

Each path answers a batch of windows with class ids (what the service keeps): the authors' and
the re-implementation's forward (which upsamples to pixels) + argmax; ours is the forward on the
patch grid (`Segmenter.forward_patches`) + our merge (`model.inference.grid_argmax`: the argmax
of the upsampled logits, computing at pixels only the classes that can win); the OpenVINO paths
are our exported graph (patch grid) + the same merge.

Two baselines:
- testkit/official_segmenter.py, our independent re-implementation of the authors' forward
  (unfused attention, einops' channels-last logits view before upsampling) — always run;
- with `--authors-code DIR`, the authors' own model code (a checkout of rstrudel/segmenter:
  `segm/model/*.py`, built as their `create_segmenter` builds it, minus the pretrained download).
  The re-implementation stands for the authors' code only while the two run within 10% of
  each other; the script says whether they do.

All run in this process, interleaved, so machine noise hits them alike; medians are reported.

    python benchmarks/official_speedup.py                                  # ours vs the re-implementation
    git clone https://github.com/rstrudel/segmenter /tmp/authors
    python benchmarks/official_speedup.py --authors-code /tmp/authors      # + the authors' code
    python benchmarks/official_speedup.py --authors-code /tmp/authors --openvino   # + OpenVINO bf16 / int8
    python benchmarks/official_speedup.py --authors-code /tmp/authors --openvino --fit-decoder 200  # answers in regions
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import describe_device, synchronize  # noqa: E402
from benchmarks.fitted_decoder import fit_decoder, labelled_scenes  # noqa: E402
from model import build_segmenter, get_variant  # noqa: E402
from model.inference import LogitsGrid  # noqa: E402
from testkit.official_segmenter import OfficialSegmenter, official_state_dict  # noqa: E402


def official_kwargs(name: str, num_classes: int) -> dict:
    """The `net_kwargs` of an official variant.yml for one of our variants."""
    cfg = get_variant(name).config
    return dict(image_size=(cfg.image_size, cfg.image_size), patch_size=cfg.patch_size, d_model=cfg.embed_dim,
                n_heads=cfg.num_heads, n_layers=cfg.depth, n_cls=num_classes, distilled=cfg.distilled,
                decoder=dict(name=cfg.decoder, n_layers=cfg.decoder_depth))


def authors_segmenter(code: Path, kwargs: dict) -> nn.Module:
    """The authors' Segmenter from their checkout, as `segm.model.factory.create_segmenter` builds
    it for inference (dropout and drop path 0), without its ImageNet download."""
    if not (code / "segm" / "model" / "segmenter.py").is_file():
        raise SystemExit(f"{code} is not a checkout of rstrudel/segmenter (no segm/model/segmenter.py); "
                         "git clone https://github.com/rstrudel/segmenter")
    sys.path.insert(0, str(code))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # their timm imports are deprecated aliases
        from segm.model.decoder import DecoderLinear, MaskTransformer
        from segm.model.segmenter import Segmenter
        from segm.model.vit import VisionTransformer
    dim, patch = kwargs["d_model"], kwargs["patch_size"]
    encoder = VisionTransformer(image_size=kwargs["image_size"], patch_size=patch, n_layers=kwargs["n_layers"],
                                d_model=dim, d_ff=4 * dim, n_heads=kwargs["n_heads"], n_cls=1000, dropout=0.0,
                                drop_path_rate=0.0, distilled=kwargs["distilled"])
    if kwargs["decoder"]["name"] == "linear":
        decoder = DecoderLinear(n_cls=kwargs["n_cls"], patch_size=patch, d_encoder=dim)
    else:
        decoder = MaskTransformer(n_cls=kwargs["n_cls"], patch_size=patch, d_encoder=dim,
                                  n_layers=kwargs["decoder"]["n_layers"], n_heads=dim // 64, d_model=dim,
                                  d_ff=4 * dim, drop_path_rate=0.0, dropout=0.0)
    return Segmenter(encoder, decoder, n_cls=kwargs["n_cls"])


def openvino_paths(net: nn.Module, size: int, stack: contextlib.ExitStack) -> dict[str, Callable]:
    """Our export run by OpenVINO in bf16, and its NNCF int8 graph (bf16 elsewhere), as
    `segmenter export onnx --precision bf16 int8` makes them (random weights: speed only)."""
    import numpy as np

    from export import OpenVinoRunner, calibration_windows, export_onnx, quantize_int8, read_exported, synthetic_scene
    from model import ModelMetadata, Predictor

    net.metadata = ModelMetadata.for_dataset("ade20k", window_size=size)
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    exported = read_exported(export_onnx(net, folder))
    rng = np.random.default_rng(0)
    windows = calibration_windows(Predictor(net), [synthetic_scene(size, size, rng) for _ in range(16)])
    return {"ov-bf16": OpenVinoRunner(exported.onnx_path, "bf16"),
            "ov-int8": OpenVinoRunner(quantize_int8(exported, windows), "bf16")}


def to_class_ids(forward: Callable, merged: bool, grid=None) -> Callable:
    """A path to B×H×W class ids: a full-size forward + argmax, or a patch-grid forward + our merge."""
    from model.inference.grid_argmax import view_class_ids
    from model.inference.merge import ViewRows

    def upsampled(x: torch.Tensor) -> torch.Tensor:
        return forward(x).max(dim=1).indices  # max().indices: what our merge does too

    def ours(x: torch.Tensor) -> torch.Tensor:
        logits = forward(x).float()
        size = tuple(x.shape[-2:])
        return torch.stack([view_class_ids(ViewRows(one[None], ((0, 0),), size, size, grid), False, size)
                            for one in logits])

    return ours if merged else upsampled


def time_interleaved(nets: dict[str, Callable], x: torch.Tensor, repeats: int, device: torch.device
                     ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Median seconds and minor page faults per call, and the share of pixels whose class id
    differs from the first path's."""
    timings: dict[str, list[float]] = {name: [] for name in nets}
    faults: dict[str, list[int]] = {name: [] for name in nets}
    with torch.inference_mode():
        outputs = {name: net(x) for name, net in nets.items()}  # also the warm-up
        first = next(iter(outputs.values()))
        diffs = {name: (out != first).float().mean().item() for name, out in outputs.items()}
        del outputs, first
        for _ in range(repeats):
            for name, net in nets.items():
                f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
                net(x)
                synchronize(device)
                timings[name].append(time.perf_counter() - t0)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return ({n: statistics.median(t) for n, t in timings.items()}, {n: statistics.median(f) for n, f in faults.items()},
            diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="Seg-T-Mask/16")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fit-decoder", type=int, default=0, metavar="STEPS",
                        help="fit the decoder to labelled synthetic scenes first and time on held-out ones: a "
                        "stand-in for trained weights (benchmarks/fitted_decoder.py); 0: random weights, noise input")
    parser.add_argument("--authors-code", type=Path, help="a checkout of rstrudel/segmenter: time their code too")
    parser.add_argument("--openvino", action="store_true", help="also time our export through OpenVINO in bf16 "
                        "and int8 (calibrated on synthetic scenes), the reduced-precision CPU paths")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = build_segmenter(args.variant, num_classes=150).to(device).eval()
    weights = "random weights"
    if args.fit_decoder:  # before the others copy the weights
        accuracy = fit_decoder(ours, args.size, steps=args.fit_decoder)
        weights = (f"decoder fitted to synthetic scenes ({args.fit_decoder} steps, held-out patch accuracy "
                   f"{accuracy:.1%})")
    kwargs = official_kwargs(args.variant, 150)
    stack = contextlib.ExitStack()
    reimpl = OfficialSegmenter(kwargs).to(device).eval()
    reimpl.load_state_dict(ours.state_dict())  # the same weights
    grid = LogitsGrid(ours.config.patch_size, ours.config.output_resize)
    nets: dict[str, Callable] = {"ours": to_class_ids(ours.forward_patches, True, grid),
                                 "reimpl": to_class_ids(reimpl, False)}
    if args.authors_code:
        authors = authors_segmenter(args.authors_code, kwargs).to(device).eval()
        authors.load_state_dict(official_state_dict(reimpl), strict=True)
        nets["authors"] = to_class_ids(authors, False)
    if args.openvino:
        nets.update({name: to_class_ids(runner, True, grid)
                     for name, runner in openvino_paths(ours, args.size, stack).items()})
    baseline = "authors" if args.authors_code else "reimpl"
    print(f"{args.variant} at {args.size}×{args.size} on {describe_device(device)}, torch {torch.__version__}; "
          f"speed-up vs the {'authors’ code' if args.authors_code else 're-implementation'}; {weights}\n")
    # Minor page faults per call: fresh memory the kernel maps and zeroes 4 KiB at a time.
    names = list(nets)
    print("| batch | " + " | ".join(f"{n} img/s" for n in names) + " | speed-up | class ids differing (fp32) "
          "| page faults " + " / ".join(names) + " |")
    print("|---:|" + "---:|" * (len(names) + 3))
    verdicts = []
    for batch in [int(b) for b in args.batches.split(",")]:
        if args.fit_decoder:  # scenes like those it was fitted to, held out
            x = labelled_scenes(batch, args.size, 150, seed=1)[0].to(device)
        else:
            x = torch.randn(batch, 3, args.size, args.size, device=device)
        seconds, faults, diffs = time_interleaved(nets, x, args.repeats, device)
        rates = " | ".join(f"{batch / seconds[n]:.2f}" for n in names)
        exact = max(d for n, d in diffs.items() if not n.startswith("ov-"))  # fp32 paths; ov-*: reduced precision
        print(f"| {batch} | {rates} | {seconds[baseline] / seconds['ours']:.2f}× "
              f"| {exact:.1e} of the pixels | " + " / ".join(f"{faults[n]:,.0f}" for n in names) + " |", flush=True)
        verdicts.append(f"batch {batch}: speed-up vs {baseline}: " + ", ".join(
            f"{n} {seconds[baseline] / seconds[n]:.2f}×" for n in names if n != baseline))
        if args.authors_code:
            ratio = seconds["reimpl"] / seconds["authors"]
            verdicts.append(f"batch {batch}: re-implementation / authors' time = {ratio:.2f} "
                            f"({'within' if abs(ratio - 1) <= 0.10 else 'NOT within'} 10%)")
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
