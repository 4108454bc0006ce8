"""Shared fixtures: tiny models (2 layers, 64×64 crops) so the suite runs in minutes on a CPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from model import ModelMetadata, Segmenter, SegmenterConfig
from testkit.mmseg_checkpoints import MMSEG_NUMERICS
from testkit.zoo_files import published_weights

# The apps the tests build (and the servers they start) listen for gRPC only where a test asks
# for it, on a free port (tests/service/test_oip_grpc.py), never on the fixed default 8001.
os.environ.setdefault("SEGMENTER_GRPC_PORT", "0")
# Ray Data's usage collection leaves a daemon thread in this process after the Ray tests that
# logs a traceback every 10 s (no Prometheus here); on Python 3.11.7 formatting one calls
# ast.parse, which races with pytest's assertion rewriting of a module imported later in the main
# thread ("AST constructor recursion depth mismatch", CPython gh-106905): a flaky failure in
# whatever test imports first. No usage stats, no thread.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def tiny_config(**overrides) -> SegmenterConfig:
    """A 2-layer, 64-wide Segmenter at 64×64: the laptop-sized config every test builds on."""
    base = dict(image_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=1, num_classes=5,
                decoder="mask_transformer", decoder_depth=2, drop_path_rate=0.0, decoder_dropout=0.0)
    base.update(overrides)
    return SegmenterConfig(**base)


def tiny_metadata(num_classes: int = 5, window: int = 64, stride: int | None = None) -> ModelMetadata:
    return ModelMetadata.for_classes([f"class{i}" for i in range(num_classes)], window_size=window,
                                     window_stride=stride or window)


def tiny_segmenter(seed: int = 0, **overrides) -> Segmenter:
    torch.manual_seed(seed)
    cfg = tiny_config(**overrides)
    return Segmenter(cfg, metadata=tiny_metadata(cfg.num_classes, cfg.image_size)).eval()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def tiny_net() -> Segmenter:
    return tiny_segmenter()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[dict[str, bytes], str, Segmenter]:
    """Two checkpoints as they are published, an mmseg zoo file and an official release (the
    weight-download tests of model/ and service/): (URL path -> bytes, the zoo file's hash prefix,
    the net in the zoo file)."""
    net = tiny_segmenter(seed=5, num_classes=150, **MMSEG_NUMERICS)
    files, prefix = published_weights(tmp_path_factory.mktemp("published"), net)
    return files, prefix, net
