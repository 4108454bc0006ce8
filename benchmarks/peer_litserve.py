"""Peer benchmark: our service vs LitServe serving MMSegmentation 1.2.2's `inference_model`.

Same checkpoint (an mmseg Seg-T-Mask/16 ADE20K file: 150 classes, 512 windows), same photos
(scikit-image's sample photos when installed, else photo-like synthetic scenes; ~640×480), same
client (httpx async, `--concurrency` requests in flight, `--requests` cycling over the photos,
after a warm-up), one server at a time on this machine:

- ours: `segmenter serve --models FILE` with the Seg-T entry of models/ade20k-cpu.yaml pointed at
  the checkpoint, the environment of `make serve` (Makefile CPU_SERVICE_ENV), POST /segment
  `output=mask`; `backend: torch` (PyTorch fp32) and/or the default `backend: auto` (the gated
  fast path: OpenVINO bf16 on CPUs with AVX512-BF16/AMX, built into SEGMENTER_CACHE_DIR at the
  first start, which is waited for and not timed);
- the peer: benchmarks/peer_litserve_server.py, a LitAPI whose predict runs
  `mmseg.apis.inference_model` on a batch (LitServe request batching) and answers a PNG mask,
  the model built by `init_model` from mmseg's own config file
  (configs/segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py).

Measured per server: images/s, p50/p99 latency, peak RSS and PSS of the server's process tree
(psutil, sampled every 0.2 s from the warm-up on; RSS counts pages shared between the tree's
processes once per process, PSS splits them), CPU share (the tree's CPU time / wall / cores,
over the timed requests), non-200 answers, and how many mask pixels equal the peer's.

    python benchmarks/peer_litserve.py                                   # both of ours + the peer
    python benchmarks/peer_litserve.py --requests 16 --concurrency 4     # a quick check
    python benchmarks/peer_litserve.py --checkpoint segmenter_vit-t_mask_8xb1-160k_ade20k-512x512_*.pth

Needs the dev extra (mmsegmentation 1.2.2, litserve, scikit-image).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import io
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load import ALLOCATOR_ENV, SERVICE_ENV  # noqa: E402
from testkit.ports import free_port  # noqa: E402

MMSEG_CONFIG = "segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py"
OURS_MODELS_FILE = ROOT / "models" / "ade20k-cpu.yaml"  # its Seg-T entry, pointed at the checkpoint
OURS_ZOO_NAME = "zoo:ade20k-seg-t-mask-16"
# skimage.data's RGB photos bundled with the wheel (no download), and one grey one made RGB.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle (left)", "motorcycle (right)",
                  "hubble_deep_field", "camera")
BOUNDARY = "segmenter-peer-boundary"
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

_children: list[subprocess.Popen] = []


# ---------------------------------------------------------------- inputs: photos, checkpoint, config


def photos(count: int, width: int, height: int) -> tuple[list[np.ndarray], str]:
    """`count` RGB photos of width×height (scaled to cover, centre-cropped), and where they came from."""
    try:
        import skimage.data

        left, right, _ = skimage.data.stereo_motorcycle()
        images = [{"motorcycle (left)": left, "motorcycle (right)": right}.get(name) if "(" in name
                  else getattr(skimage.data, name)() for name in SKIMAGE_PHOTOS]
        source = "scikit-image sample photos (" + ", ".join(SKIMAGE_PHOTOS[:count]) + ")"
    except ImportError:
        from benchmarks.overlay_encoding import scene

        images = [np.roll(scene("photo", height + 97 * i, width + 61 * i), 37 * i, axis=1) for i in range(count)]
        source = "synthetic photo-like scenes (benchmarks/overlay_encoding.py; pip install scikit-image for photos)"
    out = []
    for i in range(count):
        rgb = images[i % len(images)]
        rgb = np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb[..., :3]
        if i >= len(images):
            rgb = rgb[:, ::-1]  # more photos than samples: mirrored copies
        out.append(cover(np.ascontiguousarray(rgb), width, height))
    return out, source


def cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max(width / w, height / h)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    image = Image.fromarray(rgb).resize(size, Image.BICUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)  # lossless: both decode the same pixels
    return buffer.getvalue()


def multipart(image: bytes) -> bytes:
    """POST /segment's body: the file field `image` and `output=mask` (the peer ignores the latter)."""
    return b"".join([f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="output"\r\n\r\nmask\r\n'.encode(),
                     f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="photo.png"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode(), image, f"\r\n--{BOUNDARY}--\r\n".encode()])


def random_mmseg_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised Seg-T-Mask/16 (150 classes) in MMSegmentation's layout, as mmseg 1.x's
    config builds it (no patch-embedding bias, no conv_seg in the mask head), with ADE20K's classes
    in `meta.dataset_meta`: what both servers load as a real zoo file."""
    from model import ModelMetadata, build_segmenter
    from testkit.mmseg_checkpoints import MMSEG_NUMERICS, to_mmseg

    torch.manual_seed(seed)
    net = build_segmenter("Seg-T-Mask/16", num_classes=150, **MMSEG_NUMERICS)
    with torch.no_grad():
        net.encoder.patch_embed.proj.bias.zero_()
    state = to_mmseg(net.state_dict())
    del state["backbone.patch_embed.projection.bias"]
    meta = ModelMetadata.for_dataset("ade20k")
    torch.save({"meta": {"dataset_meta": {"classes": list(meta.class_names),
                                          "palette": [list(p) for p in meta.palette]}},
                "state_dict": state}, path)
    return path


def has_patch_bias(checkpoint: Path) -> bool:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    return "backbone.patch_embed.projection.bias" in state


def mmseg_config() -> Path:
    try:
        import mmseg
    except ImportError:
        raise SystemExit("mmsegmentation is not installed: pip install -e '.[dev]' (mmsegmentation==1.2.2, "
                         "mmengine, mmcv-lite==2.1.0)") from None
    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "segmenter" / MMSEG_CONFIG
    if not path.is_file():
        raise SystemExit(f"mmseg's config {MMSEG_CONFIG} is not in {path.parent}; pass --config")
    return path


def ours_models_file(checkpoint: Path, backend: str, folder: Path, overrides: dict) -> tuple[Path, dict]:
    """A models file with models/ade20k-cpu.yaml's Seg-T entry (its batch and queue settings), its
    checkpoint replaced; `backend: torch` pinned, or left to auto; `overrides` (not None) applied."""
    entry = {"name": "seg-t-mask-16-ade20k", "device": "cpu", "max_batch_size": 2, "max_queue_windows": 16}
    if OURS_MODELS_FILE.is_file():
        for candidate in yaml.safe_load(OURS_MODELS_FILE.read_text()).get("models", []):
            if candidate.get("checkpoint") == OURS_ZOO_NAME:
                entry = dict(candidate)
    entry.update(checkpoint=str(checkpoint.resolve()), aliases=[])
    entry.pop("backend", None)
    if backend == "torch":
        entry["backend"] = "torch"
    entry.update({k: v for k, v in overrides.items() if v is not None})
    path = folder / f"models-{backend}.yaml"
    path.write_text(yaml.safe_dump({"models": [entry]}, sort_keys=False))
    return path, entry


# ---------------------------------------------------------------- servers


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)  # its own process group: stopped as a whole
    _children.append(process)
    return process


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 20 s."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # LitServe's workers, or anything the group left behind
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    if process in _children:
        _children.remove(process)


def _stop_all(*_: object) -> None:
    for process in list(_children):
        stop(process)


def _exit_on_signal(signum: int, _frame: object) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def wait_ready(url: str, path: str, process: subprocess.Popen, log: Path, timeout: float) -> float:
    start_time = time.perf_counter()
    while time.perf_counter() - start_time < timeout:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode} before it was ready; "
                             f"its log ({log}) ends:\n{tail(log)}")
        try:
            if httpx.get(url + path, timeout=5).status_code == 200:
                return time.perf_counter() - start_time
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s; its log ({log}) ends:\n{tail(log)}")


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class TreeSampler(threading.Thread):
    """Peak RSS and PSS of a process tree (sums over its processes), sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = pss = 0
            for process in tree(self.pid):
                try:
                    info = process.memory_full_info()
                    rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    seconds = {}
    for process in tree(pid):
        try:
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return seconds


# ---------------------------------------------------------------- the client


@dataclass
class Run:
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    masks: dict[int, bytes] = field(default_factory=dict)  # photo index -> the first mask PNG
    errors: list[str] = field(default_factory=list)


async def drive(url: str, bodies: list[bytes], concurrency: int, requests: int, run: Run) -> Run:
    counter = iter(range(requests))

    async def loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            start_time = time.perf_counter()
            try:
                response = await client.post("/segment", content=bodies[i % len(bodies)], headers=HEADERS)
            except httpx.HTTPError as exc:
                run.statuses[0] = run.statuses.get(0, 0) + 1
                run.errors.append(repr(exc))
                continue
            run.latencies.append(time.perf_counter() - start_time)
            run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                run.masks.setdefault(i % len(bodies), response.content)
            elif len(run.errors) < 3:
                run.errors.append(f"{response.status_code}: {response.text[:300]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:
        start_time = time.perf_counter()
        await asyncio.gather(*[loop(client) for _ in range(concurrency)])
        run.elapsed = time.perf_counter() - start_time
    return run


@dataclass
class Result:
    name: str
    detail: str
    ready_s: float
    run: Run
    peak_rss: int
    peak_pss: int
    cpu_share: float
    client_cpu_share: float


def measure(name: str, detail: str, command: list[str], env: dict[str, str], ready_path: str, port: int,
            bodies: list[bytes], args: argparse.Namespace, log: Path, describe=None) -> Result:
    url = f"http://127.0.0.1:{port}"
    print(f"[{name}] starting: {shlex.join(command)}", file=sys.stderr, flush=True)
    process = start(command, env, log)
    try:
        ready_s = wait_ready(url, ready_path, process, log, args.ready_timeout)
        if describe:
            detail = describe(url) or detail
        print(f"[{name}] ready after {ready_s:.0f} s ({detail}); warming up", file=sys.stderr, flush=True)
        sampler = TreeSampler(process.pid)
        sampler.start()
        warm = asyncio.run(drive(url, bodies, args.concurrency, max(args.warmup, 1), Run()))
        if warm.statuses.get(200, 0) == 0:
            raise SystemExit(f"[{name}] no warm-up request succeeded: {warm.errors[:3]}\nits log ends:\n{tail(log)}")
        cpu_before, client_before, wall_before = tree_cpu_seconds(process.pid), time.process_time(), time.perf_counter()
        run = asyncio.run(drive(url, bodies, args.concurrency, args.requests, Run()))
        cpu_after, client_cpu, wall = tree_cpu_seconds(process.pid), time.process_time() - client_before, \
            time.perf_counter() - wall_before
        sampler.stop()
        for i, mask in warm.masks.items():
            run.masks.setdefault(i, mask)
        cores = len(os.sched_getaffinity(0))
        cpu = sum(seconds - cpu_before.get(pid, 0.0) for pid, seconds in cpu_after.items())
        print(f"[{name}] {run.statuses.get(200, 0)}/{args.requests} answered in {run.elapsed:.1f} s",
              file=sys.stderr, flush=True)
        if run.errors:
            print(f"[{name}] errors: {run.errors[:3]}", file=sys.stderr)
        return Result(name, detail, ready_s, run, sampler.peak_rss, sampler.peak_pss, cpu / wall / cores,
                      client_cpu / wall / cores)
    finally:
        stop(process)


def ours_description(url: str) -> str | None:
    """What /models says the model runs on, and for backend auto the gate's figures."""
    try:
        listing = httpx.get(url + "/models", timeout=10).json()
        entries = listing.get("models", listing) if isinstance(listing, dict) else listing
        entry = entries[0]
        parts = [str(entry.get("backend_detail") or f"{entry.get('backend')} {entry.get('precision')}")]
        fast = entry.get("fast_path") or {}
        if fast:
            gates = ", ".join(f"{p} gate {g.get('pixel_agreement', float('nan')):.2%} "
                              f"{'passed' if g.get('passed') else 'failed'}"
                              for p, g in (fast.get("gates") or {}).items())
            parts.append(f"fast path {fast.get('precision')}" + (f" ({gates})" if gates else ""))
        return "; ".join(parts)
    except (httpx.HTTPError, ValueError, LookupError, AttributeError, TypeError):
        return None


def mask_of(png_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_bytes)))


def agreement(a: Run, b: Run) -> float | None:
    """Fraction of equal pixels over the photos both answered."""
    equal = total = 0
    for i in sorted(set(a.masks) & set(b.masks)):
        x, y = mask_of(a.masks[i]), mask_of(b.masks[i])
        if x.shape != y.shape:
            total += max(x.size, y.size)
            continue
        equal, total = equal + int((x == y).sum()), total + x.size
    return equal / total if total else None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--requests", type=int, default=64, help="timed requests per server (default 64)")
    parser.add_argument("--warmup", type=int, help="warm-up requests per server (default: 2 × concurrency)")
    parser.add_argument("--checkpoint", type=Path, help="an mmseg Seg-T-Mask/16 ADE20K .pth (default: a randomly "
                        "initialised one in mmseg's layout)")
    parser.add_argument("--config", type=Path, help=f"mmseg's config of the checkpoint (default: {MMSEG_CONFIG})")
    parser.add_argument("--ours-backend", choices=["torch", "auto", "both"], default="both")
    parser.add_argument("--skip-peer", action="store_true", help="only our service")
    parser.add_argument("--ours-batches-in-flight", type=int, help="override the entry's batches_in_flight")
    parser.add_argument("--ours-max-batch-size", type=int, help="override the entry's max_batch_size (windows)")
    parser.add_argument("--ours-torch-threads", type=int, help="SEGMENTER_TORCH_THREADS (default: `make serve`'s "
                        f"{SERVICE_ENV['SEGMENTER_TORCH_THREADS']}; 0: torch's default, every core)")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--peer-batch-size", type=int, help="LitServe max_batch_size (default: --concurrency)")
    parser.add_argument("--peer-batch-timeout", type=float, default=0.05, help="LitServe batch_timeout, s")
    parser.add_argument("--cache-dir", type=Path, help="SEGMENTER_CACHE_DIR for backend auto (default: a temporary "
                        "one, built at the start; give a folder to build once and reuse)")
    parser.add_argument("--ready-timeout", type=float, default=3600, help="seconds to wait for a server to start")
    args = parser.parse_args()
    args.warmup = 2 * args.concurrency if args.warmup is None else args.warmup
    peer_batch = args.peer_batch_size or args.concurrency
    if not args.skip_peer:
        try:
            import litserve  # noqa: F401
        except ImportError:
            raise SystemExit("litserve is not installed: pip install litserve (it is in the dev extra: "
                             "pip install -e '.[dev]'), or run with --skip-peer") from None
    config = args.config or mmseg_config()
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)

    with tempfile.TemporaryDirectory(prefix="peer-litserve-") as tmp:
        tmp = Path(tmp)
        if args.checkpoint:
            checkpoint = args.checkpoint.resolve()
            if not checkpoint.is_file():
                raise SystemExit(f"--checkpoint {checkpoint}: no such file")
            checkpoint_note = str(checkpoint)
        else:
            checkpoint = random_mmseg_checkpoint(tmp / "segmenter_vit-t_mask_ade20k_random.pth")
            checkpoint_note = "randomly initialised Seg-T-Mask/16, 150 classes, mmseg layout"
        images, source = photos(args.photos, *args.size)
        bodies = [multipart(png(rgb)) for rgb in images]
        cores = len(os.sched_getaffinity(0))
        print(f"checkpoint: {checkpoint_note}; mmseg config: {config.name}\nphotos: {len(images)} × "
              f"{args.size[0]}×{args.size[1]}, {source}\nclient: httpx, concurrency {args.concurrency}, "
              f"{args.requests} timed requests after {args.warmup} warm-up, per server, one server at a time; "
              f"{cores} cores ({psutil.cpu_count()} on the machine), load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the start", flush=True)

        results: list[Result] = []
        backends = {"both": ["torch", "auto"], "torch": ["torch"], "auto": ["auto"]}[args.ours_backend]
        service_env = {**SERVICE_ENV, **os.environ, **ALLOCATOR_ENV}  # as `make serve` (CPU_SERVICE_ENV)
        for backend in backends:
            models_file, entry = ours_models_file(checkpoint, backend, tmp, {
                "batches_in_flight": args.ours_batches_in_flight, "max_batch_size": args.ours_max_batch_size})
            env = dict(service_env)
            if args.ours_torch_threads is not None:
                env["SEGMENTER_TORCH_THREADS"] = str(args.ours_torch_threads)
            if backend == "auto":
                env["SEGMENTER_CACHE_DIR"] = str(args.cache_dir or tmp / "cache")
            port = free_port()
            command = [sys.executable, "-m", "cli", "serve", "--models", str(models_file), "--port", str(port),
                       "--log-level", "warning"]
            settings = ", ".join([*(f"{k} {entry[k]}" for k in ("max_batch_size", "batches_in_flight",
                                                                "max_queue_windows") if k in entry),
                                  f"torch threads {env.get('SEGMENTER_TORCH_THREADS', '0')}"])
            describe = lambda url, s=settings: "; ".join(filter(None, [ours_description(url), s]))  # noqa: E731
            results.append(measure(f"ours ({backend})", f"backend {backend}", command, env, "/readyz", port, bodies,
                                   args, tmp / f"ours-{backend}.log", describe=describe))
        if not args.skip_peer:
            port = free_port()
            command = [sys.executable, str(ROOT / "benchmarks" / "peer_litserve_server.py"), "--checkpoint",
                       str(checkpoint), "--config", str(config), "--port", str(port), "--max-batch-size",
                       str(peer_batch), "--batch-timeout", str(args.peer_batch_timeout), "--patch-bias",
                       "yes" if has_patch_bias(checkpoint) else "no"]
            results.append(measure("LitServe + mmseg", f"inference_model, fp32, max_batch_size {peer_batch}, "
                                   f"batch_timeout {args.peer_batch_timeout} s", command, dict(os.environ),
                                   "/health", port, bodies, args, tmp / "peer.log"))

    reference = results[-1] if not args.skip_peer else results[0]
    peer = results[-1] if not args.skip_peer else None
    print(f"\n`{shlex.join(['python', 'benchmarks/peer_litserve.py', *sys.argv[1:]])}`\n")
    print(f"| server | images/s | vs peer | p50 s | p99 s | peak RSS GiB | peak PSS GiB | CPU share | "
          f"non-200 | masks = {reference.name} | started in s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ips = r.run.statuses.get(200, 0) / r.run.elapsed if r.run.elapsed else float("nan")
        peer_ips = peer.run.statuses.get(200, 0) / peer.run.elapsed if peer and peer.run.elapsed else None
        agree = agreement(r.run, reference.run) if r is not reference else None
        bad = sum(n for code, n in r.run.statuses.items() if code != 200)
        print(f"| {r.name}: {r.detail} | {ips:.2f} | {f'{ips / peer_ips:.2f}×' if peer_ips else '–'} "
              f"| {percentile(r.run.latencies, 50):.2f} | {percentile(r.run.latencies, 99):.2f} "
              f"| {r.peak_rss / 2**30:.2f} | {r.peak_pss / 2**30:.2f} | {r.cpu_share:.0%} | {bad} "
              f"| {f'{agree:.2%}' if agree is not None else '–'} | {r.ready_s:.0f} |")
    print(f"\nCPU share: the server tree's CPU time / wall / {len(os.sched_getaffinity(0))} cores over the timed "
          f"requests (the client used {max(r.client_cpu_share for r in results):.0%} at most). Peak memory: "
          "sampled every 0.2 s from the warm-up on, summed over the server's processes. "
          "Ours runs with `make serve`'s environment (CPU_SERVICE_ENV); the peer with this shell's.")


if __name__ == "__main__":
    main()
