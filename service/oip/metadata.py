"""What a v2 client learns before it sends anything: the server's and each model's metadata."""

from __future__ import annotations

from model import __version__
from service.errors import ServiceError
from service.model_pool import ModelPool, ServedModel, UnknownModel
from service.oip.tensors import INPUT, class_ids_datatype

SERVER_NAME = "segmenter"
VERSION = "1"  # every model has one version: the one in the models file
EXTENSIONS = ("binary_tensor_data", "parameters")


def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


def find_model(pool: ModelPool, name: str, version: str | None = None) -> ServedModel:
    """The served model a v2 path names (name or alias), any state; 404 naming the known ones."""
    try:
        served = pool.resolve(name)
    except UnknownModel as exc:
        raise ServiceError(404, "unknown_model", str(exc)) from exc
    if version not in (None, "", VERSION):
        raise ServiceError(404, "unknown_model", f"model {served.spec.name!r} has no version {version!r}; its one "
                           f"version is {VERSION!r} (or leave the version out)")
    return served


def model_metadata(served: ServedModel) -> dict:
    """Inputs and outputs with datatypes and shapes (-1: any size). A model still loading has no
    class count yet: its class_ids datatype is known once it is ready (503 until then)."""
    if served.loaded is None:
        raise ServiceError(503, "unavailable", f"model {served.spec.name!r} is {served.state}"
                           + (f": {served.reason}" if served.reason else "; its metadata comes once it has loaded"),
                           headers={"Retry-After": "1"})
    metadata = served.loaded.predictor.metadata
    return {
        "name": served.spec.name,
        "versions": [VERSION],
        "platform": f"segmenter_{served.loaded.spec.backend}",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],  # or UINT8 [-1,-1,3] / [-1,-1,-1,3]
        "outputs": [{"name": "class_ids", "datatype": class_ids_datatype(metadata), "shape": [-1, -1, -1]},
                    {"name": "confidence", "datatype": "FP32", "shape": [-1, -1, -1]}],
    }
