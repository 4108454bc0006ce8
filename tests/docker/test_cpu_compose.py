"""The CPU deployment, end to end: build the image, `docker compose up` the CPU variant, wait
until healthy, segment an image, check /metrics counted it and the v2 gRPC API answers.

Runs when SEGMENTER_DOCKER_TEST=1 (`.ci/run` sets it). It starts a local engine with
../shared/docker/local-engine.sh (no registry here: the base image is a build arg); when no
engine can start, the test is skipped with a loud reason.

    SEGMENTER_DOCKER_TEST=1 .venv/bin/python -m pytest tests/docker -s
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image
from tritonclient.grpc import service_pb2, service_pb2_grpc

from model import Predictor, load_segmenter
from testkit.ports import free_port
from tests.service.conftest import encode
from training.data.synthetic import render

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT.parent / "shared" / "docker" / "local-engine.sh"
COMPOSE = ["docker", "compose", "-p", "segmenter-ci", "-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml"]
IMAGE = "segmenter:cpu-test"  # not the users' segmenter:cpu, which the cleanup would delete

pytestmark = pytest.mark.skipif(os.environ.get("SEGMENTER_DOCKER_TEST") != "1",
                                reason="docker test: set SEGMENTER_DOCKER_TEST=1 (.ci/run does)")


def _run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def _base_image() -> str:
    """Start the local engine; its last output line names the local base image."""
    if not ENGINE.is_file():
        return _skip(f"{ENGINE} is missing, so no Docker engine can be started here")
    result = _run(["bash", str(ENGINE)], timeout=900)
    if result.returncode != 0:
        return _skip(f"the Docker engine did not start ({result.stderr.strip()[-500:]})")
    return result.stdout.strip().splitlines()[-1]


FIX_ROOT_MODE = """
import sys, tarfile
src = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
dst = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
root = tarfile.TarInfo("./")
root.type, root.mode = tarfile.DIRTYPE, 0o755
dst.addfile(root)
for member in src:
    if member.name not in (".", "./"):
        dst.addfile(member, src.extractfile(member) if member.isreg() else None)
dst.close()
"""


def _traversable_base(base: str) -> str:
    """The base image, or a copy of it whose / is 0755.

    The local engine's debootstrapped image has a 0700 root directory (it was packed from a
    mktemp dir), so the image's non-root user could not even exec its entrypoint. A layer cannot
    change /'s mode, so the image is re-imported with it fixed. Real base images need nothing.
    """
    mode = _run(["docker", "run", "--rm", "--user", "0", "--entrypoint", "stat", base, "-c", "%a", "/"], timeout=120)
    if mode.returncode == 0 and mode.stdout.strip() == "755":
        return base
    fixed = "local/segmenter-test-base:latest"
    container = _run(["docker", "create", base, "/bin/true"], timeout=120).stdout.strip()
    try:
        command = (f"docker export {container} | {sys.executable} -c '{FIX_ROOT_MODE}' | docker import - {fixed}")
        result = _run(["bash", "-o", "pipefail", "-c", command], timeout=600)
        assert result.returncode == 0, result.stderr
    finally:
        _run(["docker", "rm", container], timeout=120)
    print(f"\nnote: {base} has a {mode.stdout.strip()} root directory; building from {fixed} (/ = 755)")
    return fixed


def _image_ids() -> set[str]:
    return set(_run(["docker", "images", "-a", "-q", "--no-trunc"], timeout=120).stdout.split())


def _remove_images_since(before: set[str]) -> None:
    """Delete every image this test created (its build stages and the re-imported base too):
    the vfs storage driver keeps a full copy per layer, ~6 GB per build, which would otherwise
    pile up run after run until the disk is full."""
    _run(["docker", "rmi", "-f", IMAGE], timeout=300)
    for _ in range(5):  # a parent goes only after its children: repeat until nothing is left
        leftover = sorted(_image_ids() - before)
        if not leftover:
            return
        _run(["docker", "rmi", "-f", *leftover], timeout=600)
    print(f"\nnote: could not remove {len(leftover)} images this test built: {leftover}")


def _skip(reason: str):
    message = f"DOCKER TEST SKIPPED: {reason}"
    print("\n" + "!" * 80 + "\n" + message + "\n" + "!" * 80)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)



def _wait_healthy(container: str, timeout: float) -> None:
    """Poll Docker's view of the healthcheck (an external process: nothing to await)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = json.loads(_run(["docker", "inspect", "--format", "{{json .State}}", container], timeout=30).stdout)
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if state["Status"] in ("exited", "dead"):
            break
        time.sleep(2)
    logs = _run(["docker", "logs", container], timeout=30)
    pytest.fail(f"container {container} not healthy: {state}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def test_gpu_compose_file_is_valid_and_reserves_a_gpu():
    _base_image()  # the compose plugin comes with the engine
    result = _run(["docker", "compose", "-f", "docker-compose.yml", "config", "--format", "json"], timeout=120)
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["segmenter"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and device["capabilities"] == ["gpu"]
    assert service["healthcheck"]["test"][-1].endswith("/readyz', timeout=4)")
    assert service["restart"] == "unless-stopped" and service["read_only"] is True
    assert [p["target"] for p in service["ports"]] == [8000, 8001]  # HTTP, the v2 gRPC API
    assert "SEGMENTER_GRPC_PORT" not in service["environment"]  # gRPC on, at the image's 8001
    cpu = json.loads(_run(["docker", "compose", "-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml", "config",
                           "--format", "json"], timeout=120).stdout)["services"]["segmenter"]
    assert "deploy" not in cpu or not cpu["deploy"].get("resources")  # the CPU variant asks for no GPU
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile.cpu"


@pytest.fixture
def base_image():
    """The local engine's base image; every image the test creates is deleted afterwards."""
    base = _base_image()
    before = _image_ids()
    yield base
    _remove_images_since(before)


def test_cpu_compose_serves_the_demo_models(base_image):
    base = _traversable_base(base_image)
    # No PyTorch index is reachable here: PyPI's torch (a CUDA build that runs on the CPU) stands
    # in for the default CPU-only index users get.
    torch_index = os.environ.get("SEGMENTER_DOCKER_TORCH_INDEX", "https://pypi.org/simple")
    build = _run(["docker", "build", "--network", "host", "-f", "docker/Dockerfile.cpu",
                  "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"TORCH_INDEX_URL={torch_index}",
                  "-t", IMAGE, "."], timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "SEGMENTER_PORT": str(port), "SEGMENTER_GRPC_PUBLISHED_PORT": str(grpc_port),
           "BASE_IMAGE": base, "SEGMENTER_IMAGE": IMAGE}
    up = _run([*COMPOSE, "up", "-d", "--no-build"], timeout=300, env=env)
    assert up.returncode == 0, up.stderr
    try:
        container = _run([*COMPOSE, "ps", "-q", "segmenter"], timeout=60, env=env).stdout.strip()
        _wait_healthy(container, timeout=300)
        inspect = json.loads(_run(["docker", "inspect", container], timeout=30).stdout)[0]
        assert inspect["Config"]["User"] == "10001:10001"  # not root
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert sorted(inspect["Config"]["ExposedPorts"]) == ["8000/tcp", "8001/tcp"]

        rgb, truth = render(320, np.random.default_rng(123))
        url = f"http://127.0.0.1:{port}"
        response = httpx.post(url + "/segment", files={"image": ("scene.png", encode(rgb))},
                              data={"model": "accurate"}, timeout=120)
        assert response.status_code == 200, response.text
        assert response.headers["x-segmenter-model"] == "demo-seg-t16"
        mask = np.asarray(Image.open(io.BytesIO(response.content)))
        expected = Predictor(load_segmenter(ROOT / "models" / "demo-seg-t16")).predict(rgb)
        # Served as its gated int8 export (OpenVINO): the answer of PyTorch fp32 outside the
        # container on at least 99% of the pixels, the gate's own threshold.
        assert (mask == expected).mean() >= 0.99
        assert (mask == truth).mean() > 0.9  # and a right one: the demo model knows these textures
        metrics = httpx.get(url + "/metrics", timeout=30).text
        assert 'segmenter_requests_total{model="demo-seg-t16",output="mask",status="200"} 1.0' in metrics
        # The v2 gRPC API is on by default, on all interfaces, and published.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=30).ready
    finally:
        _run([*COMPOSE, "down", "-v", "--remove-orphans"], timeout=300, env=env)
