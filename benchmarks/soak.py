"""Soak test: minutes of mixed valid and hostile requests against a running service.

Checks, and exits non-zero unless all hold: every valid image gets exactly the mask the
`Predictor` computes, every hostile upload gets its documented status and error code (elongated
images and multi-scale on the largest allowed image included), no 5xx other than 503
back-pressure, RSS growth under 5% after warm-up (median RSS of the last third of the run vs the
first third), peak RSS under the service's stated ceiling (RSS once ready + every model's
in-flight memory budget, from /models), no leaked file descriptors, no temporary files left
behind (uploads over 1 MB spool to disk). Some requests are abandoned mid-processing (the client
hangs up after a few milliseconds): their work must stop and nothing may leak.

    python benchmarks/soak.py --minutes 10 --concurrency 16       # docs/reliability.md
    python benchmarks/soak.py --minutes 0.25 --concurrency 8 --json report.json   # CI (tests/reliability)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import free_port, start_service, wait_ready  # noqa: E402
from service.backends import load_model  # noqa: E402
from service.model_specs import load_models_file  # noqa: E402
from service.settings import BUNDLED_MODELS  # noqa: E402
from testkit.hostile_inputs import Hostile, encode, hostile_corpus, smooth_image  # noqa: E402

MAX_PIXELS = 4_000_000
MAX_UPLOAD = 8_000_000


@dataclass
class SoakReport:
    requests: int = 0
    valid: int = 0
    hostile: int = 0
    wrong: list[str] = field(default_factory=list)
    server_errors: int = 0  # 5xx other than 503
    back_pressure: int = 0  # 503
    abandoned: int = 0  # requests the client hung up on mid-processing
    rss_ready_mib: float = 0.0  # once the models are loaded, before any request
    ceiling_mib: float = 0.0  # rss_ready + every model's in-flight budget (docs/reliability.md)
    rss_peak_mib: float = 0.0  # VmHWM at the end
    rss_after_warmup_mib: float = 0.0
    rss_end_mib: float = 0.0
    fds_after_warmup: int = 0
    fds_end: int = 0
    temp_files_left: int = 0

    @property
    def rss_growth(self) -> float:
        return self.rss_end_mib / self.rss_after_warmup_mib - 1 if self.rss_after_warmup_mib else 0.0

    @property
    def passed(self) -> bool:
        return (not self.wrong and not self.server_errors and self.rss_growth < 0.05
                and self.rss_peak_mib <= self.ceiling_mib
                and self.fds_end <= self.fds_after_warmup and not self.temp_files_left)

    def summary(self) -> str:
        return (f"{self.requests} requests ({self.valid} valid, {self.hostile} hostile, {self.abandoned} abandoned): "
                f"{len(self.wrong)} wrong, {self.server_errors} 5xx, {self.back_pressure} 503; RSS "
                f"{self.rss_after_warmup_mib:.0f} -> {self.rss_end_mib:.0f} MiB ({self.rss_growth:+.1%}), peak "
                f"{self.rss_peak_mib:.0f} MiB (ceiling {self.ceiling_mib:.0f} MiB); non-socket fds "
                f"{self.fds_after_warmup} -> {self.fds_end}; temp files left {self.temp_files_left}: "
                f"{'PASS' if self.passed else 'FAIL'}")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process (VmRSS now, VmHWM its peak), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def open_fds(pid: int) -> int:
    """Open files, pipes and event fds of the process; sockets left out, as their number follows
    the client's connection pool (open while it is, closing a moment after), not a leak."""
    folder = f"/proc/{pid}/fd"
    targets = []
    for fd in os.listdir(folder):
        try:
            targets.append(os.readlink(f"{folder}/{fd}"))
        except FileNotFoundError:  # closed while listed
            continue
    return sum(1 for target in targets if not target.startswith("socket:"))


async def wait_until_idle(client, timeout_s: float = 60.0) -> None:
    """Until the service reports no request in flight and nothing reserved: requests the clients
    abandoned finish in the background, holding their sockets and spool files until then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        busy = [line for line in (await client.get("/metrics")).text.splitlines()
                if line.startswith(("segmenter_requests_in_flight ", "segmenter_in_flight_bytes{"))
                and float(line.rsplit(" ", 1)[1]) > 0]
        if not busy:
            return
        await asyncio.sleep(0.1)  # polling a state, with a deadline
    raise RuntimeError(f"the service still had work in flight {timeout_s:.0f} s after the clients stopped")


def valid_cases(models_file: Path, count: int) -> list[tuple[str, bytes, np.ndarray]]:
    """(model name, PNG or JPEG bytes, expected mask) for `count` images of varied sizes;
    one large one (over 1 MB) so uploads spool to temporary files."""
    specs = load_models_file(models_file).models
    # The expected answers come from the same model on the same backend and precision.
    predictors = {s.name: load_model(s).predictor for s in specs}
    cases = []
    for i in range(count):
        spec = specs[i % len(specs)]
        height, width = 100 + 37 * i % 300, 120 + 53 * i % 400
        rgb = smooth_image(height, width, seed=i)
        if i == 0:  # a large noisy PNG: over 1 MB, so the upload spools to a temporary file
            rgb = np.random.default_rng(i).integers(0, 256, (800, 700, 3), dtype=np.uint8)
        data = encode(rgb, "JPEG", quality=92) if i % 3 == 2 else encode(rgb)
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # JPEG: what the server sees
        cases.append((spec.name, data, predictors[spec.name].predict(decoded)))
    return cases


async def soak(url: str, pid: int, minutes: float, concurrency: int, valid: list, hostile: dict[str, Hostile],
               temp_dir: Path, hostile_share: float = 0.3, abandon_share: float = 0.05, seed: int = 0) -> SoakReport:
    report = SoakReport(rss_ready_mib=rss_mib(pid))
    budgets = sum(m["in_flight_budget_bytes"] for m in httpx.get(url + "/models").json()["models"])
    report.ceiling_mib = report.rss_ready_mib + budgets / 2**20
    rng = random.Random(seed)

    async def warm_up(client: httpx.AsyncClient) -> None:
        """Reach the peak working set before measuring: every case once, then bursts of the
        largest image from every client at once (freed memory is kept by the allocator, so RSS
        rises to the worst concurrent mix seen so far — a random mix would keep finding new peaks)."""
        for model, data, _ in valid:
            await client.post("/segment", files={"image": ("x.img", data)}, data={"model": model})
        for case in hostile.values():
            await client.post("/segment", files={"image": ("x.bin", case.data)}, data=dict(case.fields))
        model, largest, _ = max(valid, key=lambda case: case[2].size)
        for _ in range(3):
            await asyncio.gather(*[client.post("/segment", files={"image": ("x.img", largest)}, data={"model": model})
                                   for _ in range(concurrency)])

    async def abandon(client: httpx.AsyncClient) -> None:
        """Send the largest valid image and hang up a few milliseconds later, mid-processing."""
        model, data, _ = max(valid, key=lambda case: case[2].size)
        try:
            await client.post("/segment", files={"image": ("x.img", data)}, data={"model": model},
                              timeout=rng.uniform(0.005, 0.05))
        except httpx.TimeoutException:
            report.abandoned += 1

    async def client_loop(client: httpx.AsyncClient, deadline: float) -> None:
        while time.monotonic() < deadline:
            if rng.random() < abandon_share:
                await abandon(client)
                continue
            if rng.random() < hostile_share:
                name, case = rng.choice(list(hostile.items()))
                response = await client.post("/segment", files={"image": ("x.bin", case.data)}, data=dict(case.fields))
                report.hostile += 1
                is_json = response.headers.get("content-type", "").startswith("application/json")
                ok = (response.status_code == case.status and is_json
                      and response.json()["error"]["code"] == case.code)
                label = f"hostile {name}: {response.status_code}"
            else:
                model, data, expected = rng.choice(valid)
                response = await client.post("/segment", files={"image": ("x.img", data)}, data={"model": model})
                report.valid += 1
                ok = response.status_code == 200 and np.array_equal(
                    np.asarray(Image.open(io.BytesIO(response.content))), expected)
                label = f"valid {model}: {response.status_code}"
            report.requests += 1
            if response.status_code == 503:
                report.back_pressure += 1
            elif response.status_code >= 500:
                report.server_errors += 1
            if not ok and response.status_code != 503:
                report.wrong.append(label)

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await warm_up(client)
        # ...and a stretch of the real mix, so fragmentation settles too.
        mixed_until = time.monotonic() + max(20.0, 0.2 * minutes * 60)
        await asyncio.gather(*[client_loop(client, mixed_until) for _ in range(concurrency)])
        await wait_until_idle(client)
        report.fds_after_warmup = open_fds(pid)
        deadline = time.monotonic() + minutes * 60
        samples: list[float] = []

        async def sample_rss() -> None:  # a measurement cadence, not synchronisation
            while time.monotonic() < deadline:
                samples.append(rss_mib(pid))
                await asyncio.sleep(0.25)

        await asyncio.gather(sample_rss(), *[client_loop(client, deadline) for _ in range(concurrency)])
        await wait_until_idle(client)  # before counting what is left open
    # RSS moves by a few percent between any two instants as batches come and go; a leak is a
    # trend. Compare the medians of the first and last thirds of the measured period.
    third = max(1, len(samples) // 3)
    report.rss_after_warmup_mib = statistics.median(samples[:third])
    report.rss_end_mib = statistics.median(samples[-third:])
    report.rss_peak_mib = rss_mib(pid, "VmHWM")
    report.fds_end = open_fds(pid)
    report.temp_files_left = sum(1 for _ in temp_dir.iterdir())
    return report


def run(models_file: Path, minutes: float, concurrency: int) -> SoakReport:
    """Start a service (its own TMPDIR, to count temporary files), soak it, stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        temp_dir = Path(tmp) / "service-tmp"
        temp_dir.mkdir()
        valid = valid_cases(models_file, 12)
        hostile = hostile_corpus(MAX_PIXELS)
        port = free_port()
        # The default window limits (the load benchmark raises the queue limit; the soak must not).
        limits = {"TMPDIR": str(temp_dir), "SEGMENTER_MAX_IMAGE_PIXELS": str(MAX_PIXELS),
                  "SEGMENTER_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "SEGMENTER_MAX_QUEUE_WINDOWS": "512"}
        process = start_service(models_file, port, Path(tmp) / "service.log", extra_env=limits)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process)
            return asyncio.run(soak(f"http://127.0.0.1:{port}", process.pid, minutes, concurrency, valid, hostile,
                                    temp_dir))
        finally:
            process.terminate()
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=BUNDLED_MODELS)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write the report's figures to this file")
    args = parser.parse_args()
    report = run(args.models, args.minutes, args.concurrency)
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps({**dataclasses.asdict(report), "rss_growth": report.rss_growth}, indent=2))
    for line in report.wrong[:20]:
        print("  wrong:", line)
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":
    main()
