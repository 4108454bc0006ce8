"""`Predictor.predict` vs MMSegmentation 1.2.2's `inference_model`, in one process, per photo.

The same mmseg-layout Seg-T-Mask/16 file (random weights unless `--checkpoint`), the same photos
(benchmarks/peer_litserve.py's: scikit-image samples cropped to 640×480), each path called once
per photo in turn (interleaved, so machine noise hits both alike), medians reported; both answer
class ids at the photo's size. Ours runs through the default path of a Python caller
(`Predictor(load_segmenter(file))`: PyTorch fp32); the service's gated OpenVINO path is
benchmarks/peer_litserve.py's business.

    python benchmarks/predict_vs_mmseg.py
    python benchmarks/predict_vs_mmseg.py --checkpoint segmenter_vit-t_mask_8xb1-160k_ade20k-512x512_*.pth
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from benchmarks.peer_litserve import has_patch_bias, mmseg_config, photos, random_mmseg_checkpoint  # noqa: E402
from model import Predictor, load_segmenter  # noqa: E402


def mmseg_model(config: Path, checkpoint: Path):
    from testkit.mmseg_reference import import_mmseg

    import_mmseg()  # mmcv-lite: stubs for the compiled ops the Segmenter never calls
    from mmengine.config import Config
    from mmseg.apis import init_model

    cfg = Config.fromfile(str(config))
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.patch_bias = has_patch_bias(checkpoint)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return init_model(cfg, str(checkpoint), device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="an mmseg Seg-T-Mask/16 ADE20K .pth (default: random weights)")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="calls per photo and path")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_mmseg_checkpoint(Path(tmp) / "segmenter_vit-t_mask_random.pth")
        theirs = mmseg_model(mmseg_config(), checkpoint)
        from mmseg.apis import inference_model  # after mmseg_model: mmcv-lite needs its stubs first

        ours = Predictor(load_segmenter(checkpoint))
        images, source = photos(args.photos, 640, 480)
        paths = {"ours (Predictor.predict)": ours.predict,
                 "mmseg inference_model": lambda rgb: inference_model(theirs, rgb[:, :, ::-1].copy())}  # BGR
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        same = total = 0
        with torch.inference_mode():
            for rgb in images:  # warm-up, and the agreement of the two answers
                a = ours.predict(rgb)
                b = inference_model(theirs, rgb[:, :, ::-1].copy()).pred_sem_seg.data[0].numpy()
                same, total = same + int((a == b).sum()), total + a.size
            for _ in range(args.rounds):
                for rgb in images:
                    for name, path in paths.items():
                        start = time.perf_counter()
                        path(rgb)
                        seconds[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in seconds.items()}
    base = medians["mmseg inference_model"]
    print(f"{args.photos} photos ({source}), {args.rounds} rounds, {args.threads} threads, torch {torch.__version__}; "
          f"{'random weights' if not args.checkpoint else args.checkpoint.name}; masks agree on {same / total:.2%}\n")
    print("| path | median ms per photo | speed-up vs mmseg |")
    print("|---|---:|---:|")
    for name, value in medians.items():
        print(f"| {name} | {1000 * value:.0f} | {base / value:.2f}× |")


if __name__ == "__main__":
    main()
