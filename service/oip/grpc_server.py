"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, Triton's and KServe's).

Started with the app (`service.main`) on `SEGMENTER_GRPC_PORT` (default 8001, as Triton's; 0
turns it off), in the same event loop as HTTP: both share the models, their window queues,
admission and metrics. The protobuf messages and the servicer base are tritonclient's generated
code (`tritonclient.grpc.service_pb2*`), the definitions every v2 client is built from.

Errors map to gRPC status codes (`STATUS`); a client that cancels or disconnects cancels its
handler, which withdraws its windows and stops its threads as `/segment` does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from service.errors import ServiceError
from service.oip.infer import infer
from service.oip.metadata import VERSION, find_model, model_metadata, server_metadata
from service.oip.tensors import InputTensor, OutputTensor, V2Request, bad_request, raw_data, read_request

log = logging.getLogger("segmenter.service")

# HTTP status of a ServiceError -> gRPC status code.
STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.INVALID_ARGUMENT, 415: grpc.StatusCode.INVALID_ARGUMENT,
          422: grpc.StatusCode.INVALID_ARGUMENT, 503: grpc.StatusCode.UNAVAILABLE,
          504: grpc.StatusCode.DEADLINE_EXCEEDED}
# What a gRPC message may hold beyond the image bytes themselves (names, shapes, parameters).
MESSAGE_OVERHEAD = 64 * 1024


class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The v2 RPCs; the ones not here (model repository, shared memory, statistics, trace, log
    settings) answer UNIMPLEMENTED, as the generated base class does."""

    def __init__(self, state: Any) -> None:
        self.state = state  # the app's: pool, settings, metrics, executor, abandoned

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.state.pool.all_ready)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(**server_metadata())

    async def ModelReady(self, request, context):
        served = await _or_abort(context, find_model, self.state.pool, request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=served.state == "ready")

    async def ModelMetadata(self, request, context):
        served = await _or_abort(context, find_model, self.state.pool, request.name, request.version)
        metadata = await _or_abort(context, model_metadata, served)
        tensors = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"],
            inputs=[tensors(**t) for t in metadata["inputs"]], outputs=[tensors(**t) for t in metadata["outputs"]])

    async def ModelInfer(self, request, context):
        async def read():  # parsed off the event loop, counted and timed by `infer`
            return await asyncio.get_running_loop().run_in_executor(self.state.executor, _read, request)

        try:
            return await infer(self.state, request.model_name, request.model_version, read, _answer, "v2_grpc")
        except ServiceError as exc:
            await context.abort(STATUS.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)


def _answer(name: str, request: V2Request, tensors: list[OutputTensor]) -> service_pb2.ModelInferResponse:
    response = service_pb2.ModelInferResponse(model_name=name, model_version=VERSION, id=request.id)
    for tensor in tensors:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        response.raw_output_contents.append(tensor.raw())
    return response


async def _or_abort(context, fn, *args):
    try:
        return fn(*args)
    except ServiceError as exc:
        await context.abort(STATUS.get(exc.status, grpc.StatusCode.INTERNAL), exc.message)


def _parameter(value: service_pb2.InferParameter) -> Any:
    choice = value.WhichOneof("parameter_choice")
    return getattr(value, choice) if choice else None


def _read(request: service_pb2.ModelInferRequest):
    """The request's tensors (raw_input_contents, as tritonclient sends them, or typed contents)."""
    outputs = []
    for output in request.outputs:
        if output.parameters:
            raise bad_request(f"output {output.name}: unknown parameters {sorted(output.parameters)} "
                              "(classification is not supported)")
        outputs.append(output.name)
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise bad_request(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs = []
    for i, tensor in enumerate(request.inputs):
        if tensor.parameters:
            raise bad_request(f"input {tensor.name}: unknown parameters {sorted(tensor.parameters)} (shared memory "
                              "is not supported; send the data in the request)")
        if raw:
            data = raw_data(tensor.name, tensor.datatype, raw[i])
        elif tensor.datatype == "BYTES":
            data = list(tensor.contents.bytes_contents)
        elif tensor.datatype == "UINT8":
            values = np.array(tensor.contents.uint_contents, dtype=np.int64)
            if values.size and (values.min() < 0 or values.max() > 255):
                raise bad_request(f"input {tensor.name}: UINT8 contents must be 0..255")
            data = values.astype(np.uint8)
        else:
            data = np.empty(0)  # refused by read_images, which names the datatypes accepted
        inputs.append(InputTensor(tensor.name, tensor.datatype, list(tensor.shape), data))
    parameters = {name: _parameter(value) for name, value in request.parameters.items()}
    v2_request = read_request(inputs, parameters, outputs or None)
    v2_request.id = request.id
    return v2_request


async def start(state: Any, host: str, port: int) -> grpc.aio.Server:
    """Listen for v2 gRPC on host:port; RuntimeError naming the port when it cannot be bound."""
    settings = state.settings
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", settings.max_upload_bytes + MESSAGE_OVERHEAD),
        ("grpc.max_send_message_length", -1),  # answers are as large as the images
        # Off, so a port another process holds is an error, not silently shared; on only for the
        # workers of one `segmenter serve --workers N`, which all bind it.
        ("grpc.so_reuseport", 1 if settings.grpc_reuse_port else 0),
    ])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(state), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen for gRPC on {address} ({exc}); set SEGMENTER_GRPC_PORT to a free port, or "
                           "to 0 to turn gRPC off") from None
    await server.start()
    log.info("gRPC (Open Inference Protocol v2) on %s", address)
    return server
