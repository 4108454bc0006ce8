"""Load test: the service's throughput and latency against the raw Predictor on the same work.

Starts `segmenter serve` on a free port with a models file (default: the bundled demo models).
Per concurrency level it alternates two measurements, because this VM's speed drifts: the raw
batched throughput of the same model on the same backend in this process (8 images at a time:
every window through `Predictor.forward_windows` in batches of the model's max_batch_size, then
merged — what the service does, minus HTTP, decoding and encoding; and again with the PNG decode
and the mask encode), and the service answering the same images. Reports images/s, p50/p95/p99
latency, the ratios to both raw paths, the load generator's own CPU use (it shares the machine)
and the server's peak memory (VmHWM).

    python benchmarks/load.py                                        # demo models, 1/8/32 clients
    python benchmarks/load.py --model fast --size 320 240 --requests 128
    python benchmarks/load.py --variant Seg-B-Mask/16 --requests 4 --concurrency 1   # RSS of a big model
    python benchmarks/load.py --variant Seg-T-Mask/16 --entry max_batch_size=2 --entry batches_in_flight=2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import ModelMetadata, Predictor, build_segmenter, read_image, save_checkpoint  # noqa: E402
from model.outputs import render  # noqa: E402
from service.backends import load_model  # noqa: E402
from service.model_specs import load_models_file  # noqa: E402
from service.settings import BUNDLED_MODELS  # noqa: E402
from testkit.hostile_inputs import encode, smooth_image  # noqa: E402
from testkit.ports import free_port  # noqa: E402

# glibc keeps freed memory instead of returning it to the kernel at every step; measured 25-45%
# faster forward passes on CPU (docs/benchmarks.md). The Dockerfile sets the same.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
# The CPU serving set-up of `make serve` and the CPU image: one torch thread per batch worker
# (the demo models run two batches in flight), two preprocessing threads. Override by exporting them.
SERVICE_ENV = {"SEGMENTER_TORCH_THREADS": "1", "SEGMENTER_PREPROCESS_THREADS": "2"}


def make_images(count: int, width: int, height: int) -> list[np.ndarray]:
    return [smooth_image(height, width, seed=i) for i in range(count)]


def png(rgb: np.ndarray) -> bytes:
    return encode(rgb, compress_level=1)


def raw_throughput(predictor: Predictor, images: list[np.ndarray], repeats: int = 3, group: int = 8,
                   pngs: list[bytes] | None = None) -> float:
    """Images/s of plan -> batched forward -> merge -> argmax, `group` images at a time (their
    windows batched together by shape, as the service batches 8 concurrent requests). With
    `pngs`, each image is also decoded from its PNG and its mask encoded, as a request must."""

    def once() -> None:
        for i in range(0, len(images), group):
            batch = [read_image(data) for data in pngs[i : i + group]] if pngs else images[i : i + group]
            masks = predictor.predict_many(batch)
            for rgb, mask in zip(batch, masks, strict=True) if pngs else ():
                render("mask", rgb, mask, predictor.metadata, "")

    once()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)



def start_service(models_file: Path, port: int, log: Path, tuned_for_demo: bool = True,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**(SERVICE_ENV if tuned_for_demo else {}), **os.environ, **ALLOCATOR_ENV,
           "SEGMENTER_MAX_QUEUE_WINDOWS": "100000", **(extra_env or {})}
    command = [sys.executable, "-m", "cli", "serve", "--models", str(models_file), "--port", str(port),
               "--log-level", "warning"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited with code {process.returncode}; see its log")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the service did not become ready in time")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


BOUNDARY = "segmenter-load-boundary"
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(image: bytes, model: str) -> bytes:
    """The request body, built once per image so the load generator spends little CPU per request
    (it shares the machine with the service)."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'.encode(),
             f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
             f"Content-Type: image/png\r\n\r\n".encode(), image, f"\r\n--{BOUNDARY}--\r\n".encode()]
    return b"".join(parts)


async def run_level(url: str, bodies: list[bytes], concurrency: int, requests: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            body = bodies[i % len(bodies)]
            start = time.perf_counter()
            response = await client.post("/segment", content=body, headers=HEADERS)
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        cpu_start = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*[client_loop(client) for _ in range(concurrency)])
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu_start
    q = np.percentile(latencies, [50, 95, 99]) * 1000
    return {"concurrency": concurrency, "requests": requests, "images_per_s": requests / elapsed,
            "p50_ms": q[0], "p95_ms": q[1], "p99_ms": q[2], "statuses": statuses, "client_cpu": client_cpu / elapsed}


def big_model_file(variant: str, folder: Path, entry: dict | None = None) -> Path:
    """A randomly initialised `variant` with ADE20K metadata: realistic size and memory.
    `entry`: models-file keys that replace the defaults (e.g. max_batch_size, batches_in_flight)."""
    net = build_segmenter(variant, num_classes=150)
    save_checkpoint(net, folder / "big", ModelMetadata.for_dataset("ade20k"))
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [{"name": variant, "checkpoint": str(folder / "big"),
                                                "max_batch_size": 4, "backend": "torch",  # vs raw torch
                                                **(entry or {})}]}))
    return path


def entry_value(text: str) -> tuple[str, object]:
    """--entry KEY=VALUE: the value read as YAML (2 -> int, true -> bool)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. max_batch_size=2)")
    return key, yaml.safe_load(value)


def main() -> None:
    if any(os.environ.get(k) != v for k, v in ALLOCATOR_ENV.items()):
        # Raw and service must run under the same allocator settings: restart with them.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ALLOCATOR_ENV})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=BUNDLED_MODELS, help="models file to serve")
    parser.add_argument("--variant", help="serve a randomly initialised registry variant instead (for memory)")
    parser.add_argument("--entry", type=entry_value, action="append", default=[], metavar="KEY=VALUE",
                        help="with --variant: a models-file key of its entry (max_batch_size=2, batches_in_flight=2)")
    parser.add_argument("--model", help="model name or alias to request (default: the file's first)")
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--images", type=int, default=32, help="distinct images, cycled")
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level and round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/service measurements per level")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.entry and not args.variant:
            raise SystemExit("--entry changes the --variant's entry; edit your models file instead")
        models_file = big_model_file(args.variant, Path(tmp), dict(args.entry)) if args.variant else args.models
        specs = load_models_file(models_file)
        spec = next((m for m in specs.models if args.model in (None, m.name, *m.aliases)), None)
        if spec is None:
            raise SystemExit(f"no model {args.model!r} in {models_file}")
        images = make_images(args.images, *args.size)
        bodies = [multipart(png(rgb), spec.name) for rgb in images]

        # The raw path: the same model on the same backend and precision, one batch at a time
        # with every core (the service runs `batches_in_flight` batches at once, sharing them).
        loaded = load_model(spec.model_copy(update={"batches_in_flight": 1}))
        predictor = loaded.predictor
        windows = sum(predictor.prepare(rgb).num_windows for rgb in images) / len(images)
        print(f"model {spec.name} ({loaded.backend_detail}, {spec.device}), {args.size[0]}×{args.size[1]} images, "
              f"{windows:g} windows each, max_batch_size {spec.max_batch_size}, "
              f"torch threads {torch.get_num_threads()}, {args.rounds} rounds per level")

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "service.log"
        process = start_service(models_file, port, log, tuned_for_demo=not args.variant)
        rows = []
        try:
            wait_ready(url, process)
            for concurrency in args.concurrency:
                asyncio.run(run_level(url, bodies, concurrency, min(args.requests, 2 * concurrency)))  # warm-up
                # This VM's speed drifts by tens of percent over minutes, so raw and service are
                # measured alternately (raw while the service idles) and the medians compared.
                raws, raws_io, runs = [], [], []
                for _ in range(args.rounds):
                    raws.append(raw_throughput(predictor, images))
                    raws_io.append(raw_throughput(predictor, images, pngs=[png(rgb) for rgb in images]))
                    runs.append(asyncio.run(run_level(url, bodies, concurrency, args.requests)))
                rows.append((concurrency, statistics.median(raws), statistics.median(raws_io), runs))
            rss = peak_rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
            if process.returncode not in (0, -15):
                print(log.read_text()[-3000:])
        print("| concurrency | requests | images/s | raw images/s | vs raw | raw + PNG images/s | vs raw + PNG "
              "| p50 ms | p95 ms | p99 ms | statuses | client CPU |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for concurrency, raw, raw_io, runs in rows:
            r = sorted(runs, key=lambda run: run["images_per_s"])[len(runs) // 2]  # the median round
            statuses: dict[int, int] = {}
            for run in runs:
                for code, n in run["statuses"].items():
                    statuses[code] = statuses.get(code, 0) + n
            print(f"| {concurrency} | {sum(run['requests'] for run in runs)} | {r['images_per_s']:.2f} | {raw:.2f} "
                  f"| {r['images_per_s'] / raw:.0%} | {raw_io:.2f} | {r['images_per_s'] / raw_io:.0%} "
                  f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} "
                  f"| {statuses} | {r['client_cpu']:.0%} |")
        print(f"service peak RSS (VmHWM): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
