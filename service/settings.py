"""Every service setting in one place, read from `SEGMENTER_*` environment variables (or .env).

    SEGMENTER_MODELS=models/demo.yaml SEGMENTER_MAX_UPLOAD_BYTES=20000000 segmenter serve
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The demo models committed with the repository (trained by training/configs/demo*.yaml).
BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models" / "demo.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTER_", env_file=".env", extra="ignore")

    models: Path = Field(BUNDLED_MODELS, description="YAML file listing the models to serve")
    default_model: str | None = Field(None, description="model or alias used when a request names none "
                                      "(default: the models file's `default`, else its first model)")
    # Limits users can hit; each produces a clear 4xx (see SECURITY.md).
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="413 above this many request-body bytes")
    max_image_pixels: int = Field(40_000_000, gt=0, description="413 for images with more pixels (decompression bombs)")
    max_windows_per_request: int = Field(256, gt=0, description="413 for images that need more sliding windows "
                                         "(elongated or huge images, multi-scale), known from the header")
    max_queue_windows: int = Field(512, gt=0, description="per model: the memory of this many windows' requests may "
                                   "be in flight; beyond it 503 + Retry-After")
    max_queue_delay_ms: float = Field(5.0, ge=0, description="how long a batch may wait for more windows")
    request_timeout_s: float = Field(60.0, gt=0, description="504 when a request takes longer")
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 503")
    # Start-up behaviour.
    fail_fast: bool = Field(False, description="exit at start-up if a model cannot load (else: mark it unavailable)")
    warmup: bool = Field(True, description="run one batch per model before reporting ready")
    preprocess_threads: int = Field(4, ge=1, description="threads decoding, tiling and merging images")
    torch_threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default)")
    cache_dir: Path | None = Field(None, description="where zoo:NAME weights are fetched to (<cache>/models) and "
                                   "TensorRT engines built (default: the user's cache folder for weights, a "
                                   "tensorrt-cache folder beside each ONNX file for engines)")
    weights_mirror: str | None = Field(None, description="http://host:port/prefix replacing the scheme and host of "
                                       "every zoo URL (air-gapped sites, dead hosts)")
    weights_registry: str | None = Field(None, description="extra registry files for zoo:NAME, separated by "
                                         "os.pathsep (your own entries)")
    # The Open Inference Protocol over gRPC (service/oip), beside HTTP on its own port.
    grpc_port: int = Field(8001, ge=0, le=65535, description="port of the v2 gRPC API (Triton's default); 0: off")
    grpc_host: str = Field("127.0.0.1", description="interface of the gRPC API (`segmenter serve --host` sets it "
                           "unless this variable is set)")
    grpc_reuse_port: bool = Field(False, description="share the gRPC port between processes (set by `segmenter "
                                  "serve --workers N`: each worker binds it)")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API from browsers")


@lru_cache
def get_settings() -> Settings:
    return Settings()
