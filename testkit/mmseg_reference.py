"""MMSegmentation 1.2.2's own Segmenter, built from its own config files, as a reference to compare with.

Runs on CPU from PyPI (mmsegmentation 1.2.2, mmengine, mmcv-lite 2.1.0). Two things it needs:
`mmcv.ops` exists only in the compiled mmcv, and mmseg imports a few names from it that the
Segmenter path never calls, so a stub module provides them; and mmengine reads its own Runner
files with a plain `torch.load`, which torch >= 2.6 refuses unless TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
is set — done only around mmengine's own loads of files we wrote.

Models are mmseg's `configs/segmenter/*.py`, shrunk (2 layers, 128 wide, small windows) and
randomly initialised; files are written the two ways users meet them: an mmengine Runner
checkpoint after one real training iteration, and a model-zoo file (`meta` + `state_dict`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

CONFIGS = {"mask": "segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py",
           "linear": "segmenter_vit-s_fcn_8xb1-160k_ade20k-512x512.py"}


def import_mmseg() -> types.ModuleType:
    """Import mmseg with `mmcv.ops` stubbed and every module registered; ImportError if absent."""
    if "mmcv.ops" not in sys.modules:
        ops = types.ModuleType("mmcv.ops")
        for name in ("point_sample", "sigmoid_focal_loss", "CrissCrossAttention", "PSAMask"):
            setattr(ops, name, None)  # imported at module level by heads the Segmenter never uses
        sys.modules["mmcv.ops"] = ops
    import mmseg
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)
    return mmseg


@contextlib.contextmanager
def _mmengine_may_unpickle() -> Iterator[None]:
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


def shrunk_config(kind: str, window: int = 64, stride: int = 48, test_scale: tuple[int, int] | None = (256, 64),
                  dims: int = 128, heads: int = 2, patch_bias: bool = False, num_classes: int = 150):
    """mmseg's own config for `kind` ("mask" or "linear"), shrunk; no pretrained download."""
    mmseg = import_mmseg()
    from mmengine.config import Config

    cfg = Config.fromfile(str(Path(mmseg.__file__).parent / ".mim" / "configs" / "segmenter" / CONFIGS[kind]))
    model = cfg.model
    model.pretrained = None
    model.backbone.init_cfg = None
    model.backbone.update(img_size=(window, window), embed_dims=dims, num_heads=heads, num_layers=2,
                          drop_path_rate=0.0, patch_bias=patch_bias)
    model.decode_head.update(in_channels=dims, channels=dims, num_classes=num_classes)
    if model.decode_head.type == "SegmenterMaskTransformerHead":
        model.decode_head.update(embed_dims=dims, num_heads=heads, num_layers=2)
    model.data_preprocessor.size = (window, window)
    model.test_cfg = dict(mode="slide", crop_size=(window, window), stride=(stride, stride))
    cfg.crop_size = (window, window)
    resize = [dict(type="Resize", scale=test_scale, keep_ratio=True)] if test_scale else []
    cfg.test_pipeline = [dict(type="LoadImageFromFile"), *resize, dict(type="PackSegInputs")]
    return cfg


def build(cfg, checkpoint: Path | None = None, seed: int = 0):
    """The model of `cfg` in eval mode: randomly initialised (mmseg's own init), or loaded."""
    from mmseg.apis import init_model

    torch.manual_seed(seed)
    with _mmengine_may_unpickle():
        model = init_model(cfg, checkpoint=str(checkpoint) if checkpoint else None, device="cpu")
    if checkpoint is None:
        model.init_weights()  # init_model leaves PyTorch's default init
    return model.eval()


def write_runner_checkpoint(cfg, work_dir: Path, num_classes: int = 150, window: int = 64) -> Path:
    """Train one iteration with mmengine's Runner on a fake dataset; the `iter_1.pth` it writes."""
    from mmengine.runner import Runner
    from mmengine.structures import PixelData
    from mmseg.registry import DATASETS
    from mmseg.structures import SegDataSample

    @DATASETS.register_module(name="SegmenterTestFakeDataset", force=True)
    class FakeDataset(torch.utils.data.Dataset):
        metainfo = dict(classes=tuple(f"class{i}" for i in range(num_classes)),
                        palette=[[i, 255 - i, (7 * i) % 256] for i in range(num_classes)])

        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> dict[str, Any]:
            generator = torch.Generator().manual_seed(index)
            image = torch.randint(0, 256, (3, window, window), generator=generator, dtype=torch.uint8)
            sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, num_classes, (1, window, window),
                                                                             generator=generator)))
            sample.set_metainfo(dict(img_shape=(window, window), ori_shape=(window, window),
                                     pad_shape=(window, window)))
            return dict(inputs=image, data_samples=sample)

    cfg = cfg.copy()
    cfg.work_dir = str(work_dir)
    cfg.launcher = "none"
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                       dist_cfg=dict(backend="gloo"))
    cfg.train_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                                sampler=dict(type="InfiniteSampler", shuffle=True),
                                dataset=dict(type="SegmenterTestFakeDataset"))
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=1, val_interval=1000)
    for key in ("val_dataloader", "val_cfg", "val_evaluator", "test_dataloader", "test_cfg", "test_evaluator"):
        cfg[key] = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=1)
    cfg.log_level = "WARNING"
    torch.manual_seed(0)
    Runner.from_cfg(cfg).train()
    return Path(work_dir) / "iter_1.pth"


def write_zoo_file(model, path: Path) -> Path:
    """A model-zoo style file, as mmseg 0.x published them: `meta` with CLASSES/PALETTE, `state_dict`."""
    classes = [f"class{i}" for i in range(model.decode_head.num_classes)]
    palette = [[i, 255 - i, (7 * i) % 256] for i in range(len(classes))]
    torch.save({"meta": {"CLASSES": classes, "PALETTE": palette, "mmseg_version": "0.20.2"},
                "state_dict": model.state_dict()}, path)
    return path


def _metas(height: int, width: int) -> list[dict]:
    return [dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width))]


@torch.inference_mode()
def forward_logits(model, images: torch.Tensor) -> torch.Tensor:
    """mmseg's `encode_decode`: normalized B×3×H×W -> B×C×H×W logits, one window."""
    return model.encode_decode(images, _metas(*images.shape[-2:]) * len(images))


@torch.inference_mode()
def slide_logits(model, image: torch.Tensor) -> torch.Tensor:
    """mmseg's `slide_inference` of one normalized 1×3×H×W image -> C×H×W logits."""
    return model.slide_inference(image, _metas(*image.shape[-2:]))[0]


def predict(model, rgb: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """mmseg's `inference_model` on an RGB image (it reads arrays as BGR): (mask, C×H×W logits)."""
    from mmseg.apis import inference_model

    with torch.inference_mode():
        result = inference_model(model, np.ascontiguousarray(rgb[..., ::-1]))
    return result.pred_sem_seg.data[0].numpy(), result.seg_logits.data
