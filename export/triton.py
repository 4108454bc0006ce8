"""A Triton Inference Server model repository for an exported model: two models.

    REPO/<name>/config.pbtxt                  the window forward: logits on the patch grid
    REPO/<name>/segmenter.json                our metadata (classes, normalization, window) for clients
    REPO/<name>/1/model.onnx                  (or model.plan for the TensorRT platform)
    REPO/<name>_class_ids/config.pbtxt        a window's answer: its class-id map
    REPO/<name>_class_ids/segmenter.json
    REPO/<name>_class_ids/1/model.onnx        (ONNX Runtime backend, whatever --platform)

Both take normalized B×3×ws×ws float32 windows (`images`; `/255`, minus the metadata's mean,
over its std) and batch them dynamically.

- `<name>` returns `logits` B×C×gh×gw float32 on the model's patch grid (gh = gw = ceil(ws/p)):
  the window contract of our own backends (`model.inference.forward`). The client does the rest
  as `model.Predictor` does: tile with `model.inference.plan_windows`, merge, upsample the grid
  exactly as the model would (`model.ModelMetadata.logits_grid`: ×p bilinear then crop, or a
  resize to the window) and take the argmax — or run a `Predictor(None, metadata=..., forward=F)`
  whose F sends the windows to Triton.
- `<name>_class_ids` returns `class_ids` B×ws×ws (uint8; int32 above 256 classes): the model's
  own upsampling to the window's pixels and the argmax over classes inside the graph. What a
  client that only wants labels asks for: ws² bytes per window instead of 4·C·ws² (150 classes
  at 512²: 0.26 MB instead of 157 MB; returning large float outputs costs Triton users 3-4× the
  throughput). A window is one answer; for images larger than a window, overlap-averaging the
  logits (the paper's protocol) needs the first model.

A client for the class-id model (`pip install tritonclient[http]`), an image resized to one window:

    import json
    import numpy as np
    import tritonclient.http as triton
    from PIL import Image

    meta = json.load(open("triton-repo/seg_t_class_ids/segmenter.json"))["metadata"]
    ws = meta["window_size"]
    rgb = np.asarray(Image.open("photo.jpg").convert("RGB").resize((ws, ws)), np.float32) / 255
    x = ((rgb - meta["mean"]) / meta["std"]).transpose(2, 0, 1)[None].astype(np.float32)  # 1×3×ws×ws
    images = triton.InferInput("images", list(x.shape), "FP32")
    images.set_data_from_numpy(x)
    client = triton.InferenceServerClient("localhost:8000")
    result = client.infer("seg_t_class_ids", [images], outputs=[triton.InferRequestedOutput("class_ids")])
    class_ids = result.as_numpy("class_ids")[0]  # ws×ws, indices into meta["class_names"]

`segmenter export triton` builds the class-id graph from the PyTorch checkpoint the export was
made from (`onnx.source` in its segmenter.json, or `--checkpoint`) and checks it against PyTorch
(docs/triton.md).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import torch

from export.artifact import ENGINE_FILE, INPUT_NAME, META_FILE, ONNX_FILE, OUTPUT_NAME, ExportedModel, ExportError
from export.onnx_export import CLASS_IDS_NAME, export_class_ids_onnx
from model import Segmenter

PLATFORMS = {"onnx": ("onnxruntime_onnx", ONNX_FILE), "tensorrt": ("tensorrt_plan", ENGINE_FILE)}
CLASS_IDS_SUFFIX = "_class_ids"
TRITON_TYPES = {np.dtype(np.float32): "TYPE_FP32", np.dtype(np.uint8): "TYPE_UINT8", np.dtype(np.int32): "TYPE_INT32"}


def triton_config(name: str, platform: str, window: int, output: tuple[str, str, tuple[int, ...]],
                  max_batch_size: int, max_queue_delay_us: int, gpu: bool) -> str:
    """config.pbtxt of a model taking B×3×window×window windows; `output`: (name, Triton type,
    dims without the batch)."""
    preferred = sorted({b for b in (max_batch_size // 2, max_batch_size) if b >= 1})
    output_name, output_type, dims = output
    return f"""name: "{name}"
platform: "{PLATFORMS[platform][0]}"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ 3, {window}, {window} ]
  }}
]
output [
  {{
    name: "{output_name}"
    data_type: {output_type}
    dims: [ {", ".join(map(str, dims))} ]
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {", ".join(map(str, preferred))} ]
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
instance_group [
  {{
    count: 1
    kind: {"KIND_GPU" if gpu else "KIND_CPU"}
  }}
]
"""


def class_ids_dtype(num_classes: int) -> np.dtype:
    """The class-id model's output type: uint8 up to 256 classes, int32 above."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.int32)


def source_segmenter(exported: ExportedModel) -> Segmenter:
    """The PyTorch model `exported` was made from (`onnx.source`); ExportError naming the fix."""
    from model import load_segmenter

    try:
        return load_segmenter(exported.folder)  # the checkpoint named by its segmenter.json (onnx.source)
    except Exception as exc:  # noqa: BLE001 - any reason the checkpoint cannot be read: say how to go on
        raise ExportError(f"the class-id model is built from the PyTorch checkpoint {exported.folder} was exported "
                          f"from, which cannot be loaded ({exc}); pass --checkpoint CKPT, or --no-class-ids for "
                          "the logits model alone") from exc


def write_triton_repository(exported: ExportedModel, repo: str | Path, name: str | None = None,
                            platform: str = "onnx", engine: str | Path | None = None, max_batch_size: int = 8,
                            max_queue_delay_us: int = 2000, gpu: bool = True, class_ids: bool = True,
                            net: Segmenter | None = None) -> Path:
    """Add `exported` to the Triton repository `repo` and return the logits model's folder.

    With `class_ids` (default), also `<name>_class_ids`, exported from `net` (default: the
    checkpoint `exported` was made from) at the export's window.
    """
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {sorted(PLATFORMS)}, got {platform!r}")
    name = name or re.sub(r"[^A-Za-z0-9_]+", "_", exported.folder.resolve().name).strip("_") or "segmenter"
    if class_ids and net is None:
        net = source_segmenter(exported)  # before writing anything
    model_dir = Path(repo) / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    if platform == "onnx":
        for produced in exported.folder.glob(f"{ONNX_FILE}*"):  # + model.onnx.data for large models
            shutil.copy2(produced, version_dir / produced.name)
    else:
        plan = Path(engine) if engine else exported.folder / PLATFORMS["tensorrt"][1]
        if not plan.is_file():
            raise FileNotFoundError(f"no TensorRT engine at {plan}; build one with `segmenter export tensorrt`")
        shutil.copy2(plan, version_dir / PLATFORMS["tensorrt"][1])
    shutil.copy2(exported.folder / META_FILE, model_dir / META_FILE)
    logits = (OUTPUT_NAME, "TYPE_FP32", exported.logits_shape)  # C×gh×gw: the patch grid
    (model_dir / "config.pbtxt").write_text(
        triton_config(name, platform, exported.window_size, logits, max_batch_size, max_queue_delay_us, gpu))
    if class_ids:
        write_class_ids_model(net, exported, Path(repo) / f"{name}{CLASS_IDS_SUFFIX}", max_batch_size,
                              max_queue_delay_us, gpu)
    return model_dir


def write_class_ids_model(net: Segmenter, exported: ExportedModel, model_dir: Path, max_batch_size: int = 8,
                          max_queue_delay_us: int = 2000, gpu: bool = True) -> Path:
    """`model_dir` (a Triton model): `net`'s class-id graph at the export's window, ONNX Runtime."""
    if net.config.num_classes != exported.num_classes:
        raise ExportError(f"the checkpoint has {net.config.num_classes} classes, the export {exported.num_classes}: "
                          "pass the checkpoint the export was made from")
    export_class_ids_onnx(net, model_dir / "1" / ONNX_FILE, exported.window_size, exported.opset)
    shutil.copy2(exported.folder / META_FILE, model_dir / META_FILE)
    dtype = TRITON_TYPES[class_ids_dtype(exported.num_classes)]
    output = (CLASS_IDS_NAME, dtype, (exported.window_size, exported.window_size))
    (model_dir / "config.pbtxt").write_text(
        triton_config(model_dir.name, "onnx", exported.window_size, output, max_batch_size, max_queue_delay_us, gpu))
    return model_dir


def class_ids_agreement(net: Segmenter, graph: str | Path, windows: torch.Tensor, batch_size: int = 4) -> float:
    """The fraction of the pixels of `windows` (N×3×ws×ws normalized) where the class-id graph
    (ONNX Runtime, CPU) gives the class of the argmax of PyTorch's full-size logits `net(windows)`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    same = 0
    net = net.float().cpu().eval()
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].float().cpu()
        (got,) = session.run(None, {INPUT_NAME: np.ascontiguousarray(batch.numpy())})
        with torch.inference_mode():
            expected = net(batch).argmax(dim=1).numpy()
        same += int((got.astype(np.int64) == expected).sum())
    return same / max(1, windows.numel() // 3)
