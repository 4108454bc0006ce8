"""The Open Inference Protocol (KServe v2) through the real clients: tritonclient's HTTP and gRPC.

One live server (HTTP and gRPC) serves the tiny models; every shared behaviour runs through
both clients, and its answers are compared with `POST /segment`'s on the same server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from service.main import create_app
from testkit.ports import free_port
from tests.service.conftest import encode, make_settings, random_image, standard_entries, write_models
from tests.service.live_server import LiveServer, segment_mask

MAX_WINDOWS = 16



@pytest.fixture(scope="module")
def server(checkpoints, tmp_path_factory) -> Iterator[LiveServer]:
    models = write_models(tmp_path_factory.mktemp("oip"), standard_entries(checkpoints, max_batch_size=4),
                          default="accurate")
    port = free_port()
    app = create_app(make_settings(models, fail_fast=True, grpc_port=port, max_windows_per_request=MAX_WINDOWS))
    with LiveServer(app) as live:
        live.grpc_address = f"127.0.0.1:{port}"
        yield live


@dataclass
class Triton:
    """One tritonclient flavour against the server, with what differs between the two."""

    protocol: str  # http | grpc
    module: ModuleType
    client: object

    def infer(self, model: str, images: np.ndarray, datatype: str = "BYTES", outputs=("class_ids",), **kwargs):
        tensor = self.module.InferInput("image", list(images.shape), datatype)
        tensor.set_data_from_numpy(images)
        asked = [self.module.InferRequestedOutput(name) for name in outputs]
        return self.client.infer(model, [tensor], outputs=asked, **kwargs)

    def error(self, status: int) -> str:
        """How this client reports the protocol error for an HTTP status."""
        if self.protocol == "http":
            return str(status)
        return {400: "StatusCode.INVALID_ARGUMENT", 404: "StatusCode.NOT_FOUND", 413: "StatusCode.INVALID_ARGUMENT",
                415: "StatusCode.INVALID_ARGUMENT", 504: "StatusCode.DEADLINE_EXCEEDED"}[status]


@pytest.fixture(params=["http", "grpc"])
def triton(request, server) -> Iterator[Triton]:
    if request.param == "http":
        client = triton_http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120)
        yield Triton("http", triton_http, client)
    else:
        client = triton_grpc.InferenceServerClient(server.grpc_address)
        yield Triton("grpc", triton_grpc, client)
    client.close()


def png_batch(*images: np.ndarray) -> np.ndarray:
    return np.array([encode(image) for image in images], dtype=np.object_)


def test_health_readiness_and_metadata(triton):
    client = triton.client
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny-16") and client.is_model_ready("fast")  # aliases are models too
    server = client.get_server_metadata(as_json=True) if triton.protocol == "grpc" else client.get_server_metadata()
    assert server["name"] == "segmenter" and "binary_tensor_data" in server["extensions"]
    metadata = client.get_model_metadata("fast", as_json=True) if triton.protocol == "grpc" else \
        client.get_model_metadata("fast")
    assert metadata["name"] == "tiny-32" and metadata["versions"] == ["1"]
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("image", "BYTES")]
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [("class_ids", "UINT8"), ("confidence", "FP32")]
    assert [int(d) for d in metadata["outputs"][0]["shape"]] == [-1, -1, -1]
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("nope")
    assert unknown.value.status() == triton.error(404) and "tiny-16" in unknown.value.message()


@pytest.mark.parametrize("model", ["tiny-16", "fast"])
def test_class_ids_are_the_segment_mask(triton, server, model):
    image = random_image(90, 130, seed=3)
    result = triton.infer(model, png_batch(image))
    class_ids = result.as_numpy("class_ids")
    assert class_ids.shape == (1, 90, 130) and class_ids.dtype == np.uint8
    np.testing.assert_array_equal(class_ids[0], segment_mask(server, encode(image), model=model))
    assert result.as_numpy("confidence") is None  # only when asked for


def test_options_and_confidence_match_segment(triton, server):
    image = random_image(80, 100, seed=4)
    options = {"classes": "class1,class3", "scale": 96}
    result = triton.infer("tiny-16", png_batch(image), outputs=("class_ids", "confidence"), parameters=options)
    class_ids, confidence = result.as_numpy("class_ids")[0], result.as_numpy("confidence")[0]
    fields = {"model": "tiny-16", "classes": "class1,class3", "scale": "96"}
    np.testing.assert_array_equal(class_ids, segment_mask(server, encode(image), **fields))
    assert set(np.unique(class_ids)) <= {1, 3, 255}
    assert confidence.dtype == np.float32 and confidence.shape == (80, 100)
    png_confidence = segment_mask(server, encode(image), output="confidence", **fields)
    np.testing.assert_array_equal(np.clip(np.rint(confidence * 255), 0, 255).astype(np.uint8), png_confidence)
    assert (confidence[class_ids == 255] == 0).all() and (confidence[class_ids != 255] > 0).all()


def test_pixels_and_batches(triton, server):
    """UINT8 pixels answer like the same image encoded; a batch answers like its images one by one."""
    first, second = random_image(64, 96, seed=5), random_image(64, 96, seed=6)
    alone = [triton.infer("tiny-16", png_batch(im)).as_numpy("class_ids")[0] for im in (first, second)]
    pixels = triton.infer("tiny-16", first, datatype="UINT8").as_numpy("class_ids")
    assert pixels.shape == (64, 96)  # [H,W,3] in, [H,W] out
    np.testing.assert_array_equal(pixels, alone[0])
    for batch, datatype in ((png_batch(first, second), "BYTES"), (np.stack([first, second]), "UINT8")):
        answers = triton.infer("tiny-16", batch, datatype=datatype).as_numpy("class_ids")
        assert answers.shape == (2, 64, 96)
        np.testing.assert_array_equal(answers, np.stack(alone))


BAD_REQUESTS = {
    # name: (model, images, datatype, parameters, HTTP status, words the message must have)
    "wrong datatype": ("tiny-16", np.zeros((8, 8, 3), np.float32), "FP32", None, 400, "BYTES"),
    "wrong shape": ("tiny-16", np.zeros((8, 8, 4), np.uint8), "UINT8", None, 400, "[H,W,3]"),
    "unknown model": ("nope", None, "BYTES", None, 404, "known models"),
    "not an image": ("tiny-16", np.array([b"hello"], dtype=np.object_), "BYTES", None, 415, "not an image"),
    "too many windows": ("tiny-16", None, "BYTES", {"scale": "none"}, 413, "SEGMENTER_MAX_WINDOWS_PER_REQUEST"),
    "unknown parameter": ("tiny-16", None, "BYTES", {"colour": "red"}, 400, "'colour'"),
    "bad option": ("tiny-16", None, "BYTES", {"multiscale": "sometimes"}, 400, "multiscale"),
    "two sizes": ("tiny-16", "two sizes", "BYTES", None, 400, "one size"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_protocol_errors_and_the_next_is_right(triton, server, case):
    model, images, datatype, parameters, status, words = BAD_REQUESTS[case]
    if images is None:  # a real image; with scale=none, 64×1100 needs more than MAX_WINDOWS windows
        images = png_batch(random_image(64, 1100 if case == "too many windows" else 64, seed=7))
    elif isinstance(images, str):
        images = png_batch(random_image(64, 64, seed=7), random_image(64, 80, seed=8))
    with pytest.raises(InferenceServerException) as error:
        triton.infer(model, images, datatype=datatype, parameters=parameters)
    assert error.value.status() == triton.error(status)
    assert words in error.value.message()
    image = random_image(64, 64, seed=9)
    np.testing.assert_array_equal(triton.infer("tiny-16", png_batch(image)).as_numpy("class_ids")[0],
                                  segment_mask(server, encode(image), model="tiny-16"))


def test_a_client_deadline_shorter_than_the_server_s_is_kept(triton):
    with pytest.raises(InferenceServerException) as error:
        triton.infer("tiny-16", png_batch(random_image(64, 64, seed=10)), timeout=1)  # µs: the request's own
    assert error.value.status() == triton.error(504) and "timeout" in error.value.message()


def _requests_counted(server: LiveServer, output: str, status: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    found = re.search(rf'segmenter_requests_total{{model="tiny-16",output="{output}",status="{status}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_requests_are_counted_per_protocol(triton, server):
    output = f"v2_{triton.protocol}"
    before = _requests_counted(server, output, "200"), _requests_counted(server, output, "400")
    triton.infer("tiny-16", png_batch(random_image(64, 64, seed=11)))
    with pytest.raises(InferenceServerException):
        triton.infer("tiny-16", np.zeros((8, 8, 4), np.uint8), datatype="UINT8")
    assert (_requests_counted(server, output, "200"), _requests_counted(server, output, "400")) == \
        (before[0] + 1, before[1] + 1)


# --- HTTP only: the JSON forms and request compression ---------------------------------------
def test_json_and_binary_outputs_agree(server):
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = triton_http.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(png_batch(random_image(64, 80, seed=12)))
    answers = {}
    for binary in (True, False):
        outputs = [triton_http.InferRequestedOutput(n, binary_data=binary) for n in ("class_ids", "confidence")]
        result = client.infer("tiny-16", [tensor], outputs=outputs, request_compression_algorithm="gzip")
        answers[binary] = result.as_numpy("class_ids"), result.as_numpy("confidence")
        assert ("binary_data_size" in str(result.get_response())) == binary
    np.testing.assert_array_equal(answers[True][0], answers[False][0])
    np.testing.assert_allclose(answers[True][1], answers[False][1], rtol=0, atol=1e-7)  # JSON floats round-trip


def test_kserve_style_base64_json_request(server):
    """KServe's custom-model examples send images as base64 strings in a JSON BYTES tensor."""
    image = random_image(64, 64, seed=13)
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "data": [base64.b64encode(encode(image)).decode()]}]}
    response = httpx.post(server.url + "/v2/models/tiny-16/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output["name"] == "class_ids" and output["shape"] == [1, 64, 64]
    np.testing.assert_array_equal(np.array(output["data"], np.uint8).reshape(64, 64),
                                  segment_mask(server, encode(image), model="tiny-16"))
    not_json = httpx.post(server.url + "/v2/models/tiny-16/infer", content=b"\x89PNG", timeout=60)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]


# --- gRPC: a client that goes away ------------------------------------------------------------
def test_a_grpc_client_that_disconnects_takes_its_windows_out_of_the_queue(checkpoints, tmp_path):
    """As for /segment (test_concurrency): a gRPC request whose client cancels while its windows
    wait behind a held batch must withdraw them; they never run, and it is counted as 499."""
    models = write_models(tmp_path, standard_entries(checkpoints, max_batch_size=1))
    port = free_port()
    app = create_app(make_settings(models, fail_fast=True, grpc_port=port, max_queue_delay_ms=0))
    with LiveServer(app) as server:
        batcher = app.state.pool.resolve("tiny-16").batcher
        held, release, queued, withdrawn = (threading.Event() for _ in range(4))
        seen: list[int] = []
        forward, run_groups, withdraw = batcher.forward, batcher.run_groups, batcher._withdraw

        def gated(crops):
            seen.append(len(crops))
            held.set()
            assert release.wait(30), "the test never released the forward pass"
            return forward(crops)

        async def run_and_signal(groups):
            inner = asyncio.ensure_future(run_groups(groups))
            await asyncio.sleep(0)  # one step: run_groups() queues its windows before its first await
            queued.set()
            return await inner

        def withdraw_and_signal(job):
            withdraw(job)
            withdrawn.set()

        batcher.forward, batcher._withdraw = gated, withdraw_and_signal
        with ThreadPoolExecutor(1) as pool:
            holder = pool.submit(httpx.post, server.url + "/segment", files={"image": encode(random_image(64, 64))},
                                 timeout=60)
            assert held.wait(30)  # the only worker is now held in a batch of the /segment request
            batcher.run_groups = run_and_signal
            client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
            tensor = triton_grpc.InferInput("image", [1], "BYTES")
            tensor.set_data_from_numpy(png_batch(random_image(64, 256, seed=6)))  # 4 windows
            call = client.async_infer("tiny-16", [tensor], callback=lambda result, error: None)
            assert queued.wait(30) and batcher.queued_windows == 4
            call.cancel()
            assert withdrawn.wait(30)
            assert batcher.queued_windows == 0
            release.set()
            assert holder.result().status_code == 200
            client.close()
        assert seen == [1]  # only the held request's window ever ran
        assert _requests_counted(server, "v2_grpc", "499") == 1


def test_a_body_over_the_upload_limit_is_refused_in_each_protocol_s_terms(checkpoints, tmp_path):
    models = write_models(tmp_path, standard_entries(checkpoints))
    port = free_port()
    limit = 80_000
    app = create_app(make_settings(models, fail_fast=True, grpc_port=port, max_upload_bytes=limit))
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)  # 270 kB as PNG
    small = random_image(64, 64, seed=14)
    with LiveServer(app) as server:
        clients = [Triton("http", triton_http, triton_http.InferenceServerClient(server.url.removeprefix("http://"))),
                   Triton("grpc", triton_grpc, triton_grpc.InferenceServerClient(f"127.0.0.1:{port}"))]
        for triton in clients:
            with pytest.raises(InferenceServerException) as error:
                triton.infer("tiny-16", png_batch(noise))
            if triton.protocol == "http":  # v2's error shape: {"error": "<message>"}
                assert error.value.status() == "413" and "SEGMENTER_MAX_UPLOAD_BYTES" in error.value.message()
            else:  # gRPC refuses the message itself
                assert error.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
            np.testing.assert_array_equal(triton.infer("tiny-16", png_batch(small)).as_numpy("class_ids")[0],
                                          segment_mask(server, encode(small), model="tiny-16"))
            triton.client.close()
        raw = httpx.post(server.url + "/v2/models/tiny-16/infer", content=b"x" * (limit + 1), timeout=60)
        assert raw.status_code == 413 and isinstance(raw.json()["error"], str)  # not /segment's error object
        counted = _requests_counted(server, "v2_http", "413")
        chunked = httpx.post(server.url + "/v2/models/tiny-16/infer", timeout=60,
                             content=iter([b"x" * (limit // 2)] * 3))  # no Content-Length: caught as it arrives
        assert chunked.status_code == 413 and isinstance(chunked.json()["error"], str)
        assert _requests_counted(server, "v2_http", "413") == counted + 1


def test_malformed_requests_are_4xx_not_500(server):
    url = server.url + "/v2/models/tiny-16/infer"
    huge = {"inputs": [{"name": "image", "shape": [2**40, 2**40, 3], "datatype": "UINT8", "data": []}]}
    cases = [  # (body, headers): each once made the service answer 500
        (json.dumps(huge).encode(), {}),  # a shape whose size wraps around in int64
        (b'{"inputs": []}', {"Inference-Header-Content-Length": b"\xb2"}),  # "²" in latin-1: a digit to isdigit()
        (b"[" * 100_000, {}),  # nesting deeper than the JSON parser recurses
        (json.dumps({"inputs": [{"name": "image", "shape": ["1"], "datatype": "BYTES", "data": ["eA=="]}]}).encode(),
         {}),  # a shape of strings
    ]
    for body, headers in cases:
        response = httpx.post(url, content=body, headers=headers, timeout=60)
        assert response.status_code == 400, (body[:80], response.text)
        assert isinstance(response.json()["error"], str)


def test_a_json_answer_too_large_for_json_is_refused_before_any_work(server):
    """Millions of numbers as JSON take seconds and gigabytes: binary tensor data is the way."""
    data = encode(np.full((2100, 2000, 3), 90, np.uint8))  # 4.2 M pixels
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(data).decode()]}],
            "outputs": [{"name": "class_ids", "parameters": {"binary_data": False}}]}
    response = httpx.post(server.url + "/v2/models/tiny-16/infer", json=body, timeout=60)
    assert response.status_code == 400 and "binary" in response.json()["error"]


def test_a_batch_is_admitted_as_a_whole(checkpoints, tmp_path):
    """A v2 batch reserves its memory once; one that needs more windows than the model's queue holds
    is a 413 naming the limit, never a 503 that retrying cannot cure."""
    models = write_models(tmp_path, standard_entries(checkpoints, max_queue_windows=2))
    with LiveServer(create_app(make_settings(models, fail_fast=True))) as server:
        client = Triton("http", triton_http, triton_http.InferenceServerClient(server.url.removeprefix("http://")))
        images = [random_image(64, 64, seed=20 + i) for i in range(3)]  # one window each
        answers = client.infer("tiny-16", png_batch(*images[:2])).as_numpy("class_ids")
        for image, answer in zip(images[:2], answers, strict=True):
            np.testing.assert_array_equal(answer, segment_mask(server, encode(image), model="tiny-16"))
        with pytest.raises(InferenceServerException) as error:
            client.infer("tiny-16", png_batch(*images))
        assert error.value.status() == "413" and "SEGMENTER_MAX_QUEUE_WINDOWS" in error.value.message()
        client.client.close()


def test_a_grpc_port_in_use_stops_start_up_with_its_name(checkpoints, tmp_path, server):
    """Not silently shared (SO_REUSEPORT off unless `serve --workers N`)."""
    port = int(server.grpc_address.rsplit(":", 1)[1])
    app = create_app(make_settings(write_models(tmp_path, standard_entries(checkpoints)), grpc_port=port))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(RuntimeError, match=f"cannot listen for gRPC on 127.0.0.1:{port}.*SEGMENTER_GRPC_PORT"):
        asyncio.run(start())
