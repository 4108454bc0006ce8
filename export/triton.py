"""A Triton Inference Server model repository for an exported model.

    REPO/<name>/config.pbtxt        platform, batch limits, dynamic batching, tensor shapes
    REPO/<name>/segmenter.json      our metadata (classes, normalization, window) for clients
    REPO/<name>/1/model.onnx        (or model.plan for the TensorRT platform)

Clients send normalized B×3×ws×ws windows and receive B×C×ws×ws logits: the same window
contract as our service, so `model.inference.tile_windows` / `merge_windows` do the rest client-side.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from export.artifact import ENGINE_FILE, INPUT_NAME, META_FILE, ONNX_FILE, OUTPUT_NAME, ExportedModel

PLATFORMS = {"onnx": ("onnxruntime_onnx", ONNX_FILE), "tensorrt": ("tensorrt_plan", ENGINE_FILE)}


def triton_config(name: str, platform: str, window: int, num_classes: int, max_batch_size: int,
                  max_queue_delay_us: int, gpu: bool) -> str:
    preferred = sorted({b for b in (max_batch_size // 2, max_batch_size) if b >= 1})
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
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ {num_classes}, {window}, {window} ]
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


def write_triton_repository(exported: ExportedModel, repo: str | Path, name: str | None = None,
                            platform: str = "onnx", engine: str | Path | None = None, max_batch_size: int = 8,
                            max_queue_delay_us: int = 2000, gpu: bool = True) -> Path:
    """Add `exported` to the Triton repository `repo` and return the model's folder."""
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {sorted(PLATFORMS)}, got {platform!r}")
    name = name or re.sub(r"[^A-Za-z0-9_]+", "_", exported.folder.resolve().name).strip("_") or "segmenter"
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
    (model_dir / "config.pbtxt").write_text(
        triton_config(name, platform, exported.window_size, exported.num_classes, max_batch_size,
                      max_queue_delay_us, gpu)
    )
    return model_dir
