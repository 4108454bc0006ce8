"""Batch segmentation: the local engine against Ray on this machine, and what a GPU cluster adds.

On one machine Ray cannot be faster than the local engine — the same cores do the same work —
so this measures what Ray costs: starting the cluster, starting the actors (each loads the
model), shipping rows and results, and whether the outputs are still the local engine's, byte
for byte. Per model and image set it times, in this process:

    local      `segmenter predict` (torch's default threads: every core in one process)
    ray N      `segmenter predict --engine ray --actors N` on a running local Ray (N actors,
               one core each); the cluster's own start-up (`ray.init`) is timed apart, and so is
               a job of one image (an actor's start: a process, torch, the model)
    host work  per image, everything an actor does besides the forward pass (read and decode,
               resize and normalise, merge and arg-max, PNG encoding): the CPU a GPU actor
               needs to stay busy — the input of the per-GPU estimate in docs/benchmarks.md

    python benchmarks/ray_predict.py                                   # demo model + Seg-T-Mask/16
    python benchmarks/ray_predict.py --models Seg-T-Mask/16 --images 32 --actors 1 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import ALLOCATOR_ENV  # noqa: E402
from cli.main import main as segmenter  # noqa: E402
from model import ModelMetadata, Predictor, build_segmenter, load_segmenter, read_image, save_checkpoint  # noqa: E402
from model.outputs import render  # noqa: E402
from testkit.hostile_inputs import smooth_image  # noqa: E402

DEMO = ROOT / "models" / "demo-seg-t16"


def checkpoint_for(name: str, folder: Path) -> Path:
    """The bundled demo model, or a registry variant with random weights and ADE20K metadata."""
    if name == "demo-seg-t16":
        return DEMO
    path = folder / name.replace("/", "_")
    save_checkpoint(build_segmenter(name, num_classes=150), path, ModelMetadata.for_dataset("ade20k"))
    return path


def write_images(folder: Path, count: int, width: int, height: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(smooth_image(height, width, seed=i)).save(folder / f"photo{i:03d}.jpg", quality=90)
    return folder


def first_images(images: Path, folder: Path, count: int) -> Path:
    folder.mkdir(exist_ok=True)
    for path in sorted(images.iterdir())[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def time_local(images: Path, checkpoint: Path, out: Path) -> float:
    start = time.perf_counter()
    code = segmenter(["predict", str(images), "--checkpoint", str(checkpoint), "--out", str(out), "--overlay",
                      "--scale", "none"])
    assert code == 0, "the local engine failed"
    return time.perf_counter() - start


def time_ray(images: Path, checkpoint: Path, out: Path, actors: int) -> float:
    from jobs.ray_engine import RayJob, run_ray
    from model.options import SegmentOptions

    job = RayJob(checkpoint=str(checkpoint), out=str(out), outputs=("mask", "overlay"),
                 options=SegmentOptions(scale="none"), actors=actors)
    start = time.perf_counter()
    result = run_ray(job, str(images), progress=False)
    assert not result.failures, result.failures
    return time.perf_counter() - start


def host_seconds_per_image(images: Path, checkpoint: Path, count: int = 8) -> dict[str, float]:
    """CPU seconds per image of each step of an actor's work besides the window forward passes."""
    predictor = Predictor(load_segmenter(checkpoint))
    paths = sorted(images.iterdir())[:count]
    steps = {"decode": 0.0, "resize+normalise": 0.0, "merge+argmax": 0.0, "mask PNG": 0.0, "overlay PNG": 0.0}

    def timed(step: str, fn):
        start = time.perf_counter()
        value = fn()
        steps[step] += (time.perf_counter() - start) / len(paths)
        return value

    for path in paths:
        rgb = timed("decode", lambda: read_image(path.read_bytes()))  # noqa: B023 (called at once)
        plan = timed("resize+normalise", lambda: predictor.prepare(rgb, scale="none"))  # noqa: B023
        logits = predictor.run(plan)  # not timed: the GPU's part
        mask = timed("merge+argmax", lambda: predictor.finish(plan, logits))  # noqa: B023
        for step, kind in [("mask PNG", "mask"), ("overlay PNG", "overlay")]:
            timed(step, lambda: render(kind, rgb, mask, predictor.metadata, "x"))  # noqa: B023
    return steps


def main() -> None:
    if any(os.environ.get(k) != v for k, v in ALLOCATOR_ENV.items()):  # as the service and Docker image run
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ALLOCATOR_ENV})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["demo-seg-t16", "Seg-T-Mask/16"],
                        help="demo-seg-t16 and/or registry variants (random weights, 150 classes)")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=(683, 512), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import ray

    print(f"{os.cpu_count()} cores; {args.images} JPEG images of {args.size[0]}×{args.size[1]}, --scale none, "
          "mask + overlay per image")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = write_images(folder / "images", args.images, *args.size)
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), logging_level="ERROR", log_to_driver=False)
        print(f"ray.init (a local cluster): {time.perf_counter() - start:.1f} s")
        for name in args.models:
            checkpoint = checkpoint_for(name, folder)
            seconds = time_local(images, checkpoint, folder / "local")
            print(f"\n{name}\n  {'local':12s} {seconds:6.1f} s  {args.images / seconds:6.2f} img/s")
            expected = files(folder / "local")
            startup = time_ray(first_images(images, folder / "startup", 1), checkpoint, folder / "startup-out", 1)
            print(f"  ray start-up {startup:6.1f} s  (a job of one image: the actor starts and loads the model)")
            for actors in args.actors:
                out = folder / f"ray{actors}"
                seconds = time_ray(images, checkpoint, out, actors)
                same = files(out) == expected
                label = f"ray {actors} actor{'s' if actors > 1 else ''}"
                print(f"  {label:12s} {seconds:6.1f} s  {args.images / seconds:6.2f} img/s  "
                      f"outputs equal the local engine's: {'yes' if same else 'NO'}")
            host = host_seconds_per_image(images, checkpoint)
            print("  host work per image (no forward): " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in host.items()))
            masks_only = sum(host.values()) - host["overlay PNG"]
            print(f"  one core feeds {1 / masks_only:.0f} img/s (masks only), "
                  f"{1 / sum(host.values()):.0f} (and overlays)")
            for path in [folder / "local", folder / "startup-out", *(folder / f"ray{w}" for w in args.actors)]:
                shutil.rmtree(path)
        ray.shutdown()


if __name__ == "__main__":
    main()
