"""Load test of the Open Inference Protocol adapters: tritonclient's async HTTP and gRPC clients
against our /v2 endpoints, next to `benchmarks/load.py`'s client on `POST /segment`, same model,
same images, same server.

One `segmenter serve` (HTTP and gRPC) runs the models file (default: the bundled demo models).
Per concurrency level the three clients take turns, round after round (this VM's speed drifts),
each sending `--requests` requests with `concurrency` in flight; the medians are reported. Every
client asks for the class ids only: /segment answers a PNG mask, v2 a UINT8 tensor.

    python benchmarks/load_v2.py                         # demo models, concurrency 1 2 4 8 16
    python benchmarks/load_v2.py --model fast --requests 96 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http.aio as triton_http

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import make_images, multipart, png, run_level, start_service, wait_ready  # noqa: E402
from service.model_specs import load_models_file  # noqa: E402
from service.settings import BUNDLED_MODELS  # noqa: E402
from testkit.ports import free_port  # noqa: E402


async def _drive(send: Callable[[int], Awaitable[None]], concurrency: int, requests: int) -> dict:
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client_loop() -> None:
        for i in counter:
            start = time.perf_counter()
            await send(i)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*[client_loop() for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    q = np.percentile(latencies, [50, 99]) * 1000
    return {"images_per_s": requests / elapsed, "p50_ms": q[0], "p99_ms": q[1]}


async def run_triton(module, url: str, model: str, images: list[bytes], concurrency: int, requests: int) -> dict:
    """`requests` v2 inferences through tritonclient's asyncio client (`module`: http.aio or grpc.aio)."""
    client = module.InferenceServerClient(url, **({"conn_limit": concurrency, "conn_timeout": 600}
                                                  if module is triton_http else {}))
    tensors = []
    for data in images:
        tensor = module.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([data], dtype=np.object_))
        tensors.append(tensor)
    outputs = [module.InferRequestedOutput("class_ids")]

    async def send(i: int) -> None:
        result = await client.infer(model, [tensors[i % len(tensors)]], outputs=outputs)
        result.as_numpy("class_ids")  # decoded, as a client would

    try:
        return await _drive(send, concurrency, requests)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=BUNDLED_MODELS, help="models file to serve")
    parser.add_argument("--model", help="model name or alias to request (default: the file's first)")
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--images", type=int, default=32, help="distinct images, cycled")
    parser.add_argument("--requests", type=int, default=64, help="requests per client, level and round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    specs = load_models_file(args.models)
    spec = next((m for m in specs.models if args.model in (None, m.name, *m.aliases)), None)
    if spec is None:
        raise SystemExit(f"no model {args.model!r} in {args.models}")
    pngs = [png(rgb) for rgb in make_images(args.images, *args.size)]
    bodies = [multipart(data, spec.name) for data in pngs]
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    clients = {
        "/segment (httpx)": lambda c, n: run_level(url, bodies, c, n),
        "v2 HTTP (tritonclient.http.aio)": lambda c, n: run_triton(triton_http, f"127.0.0.1:{port}", spec.name,
                                                                   pngs, c, n),
        "v2 gRPC (tritonclient.grpc.aio)": lambda c, n: run_triton(triton_grpc, f"127.0.0.1:{grpc_port}", spec.name,
                                                                   pngs, c, n),
    }
    print(f"model {spec.name} of {args.models}, {args.size[0]}×{args.size[1]} PNGs, {args.requests} requests per "
          f"client, level and round, {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "service.log"
        process = start_service(args.models, port, log, extra_env={"SEGMENTER_GRPC_PORT": str(grpc_port)})
        rows = []
        try:
            wait_ready(url, process)
            for concurrency in args.concurrency:
                for run in clients.values():  # warm-up: connections, first batches
                    asyncio.run(run(concurrency, min(args.requests, 2 * concurrency)))
                rounds: dict[str, list[dict]] = {name: [] for name in clients}
                for _ in range(args.rounds):
                    for name, run in clients.items():
                        rounds[name].append(asyncio.run(run(concurrency, args.requests)))
                rows.append((concurrency, {name: sorted(runs, key=lambda r: r["images_per_s"])[len(runs) // 2]
                                           for name, runs in rounds.items()}))
        finally:
            process.terminate()
            process.wait(timeout=60)
            if process.returncode not in (0, -15):
                print(log.read_text()[-3000:])
    names = list(clients)
    print("| concurrency | " + " | ".join(f"{n}: images/s, p50/p99 ms" for n in names)
          + " | v2 HTTP vs /segment | v2 gRPC vs /segment |")
    print("|---:|" + "---:|" * (len(names) + 2))
    for concurrency, medians in rows:
        base = medians[names[0]]["images_per_s"]
        cells = [f"{m['images_per_s']:.2f}, {m['p50_ms']:.0f}/{m['p99_ms']:.0f}" for m in medians.values()]
        ratios = [f"{medians[n]['images_per_s'] / base:.0%}" for n in names[1:]]
        print(f"| {concurrency} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
