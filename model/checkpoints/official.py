"""Official Segmenter release checkpoints: `checkpoint.pth` with `variant.yml` beside it.

The authors' files (rstrudel/segmenter) load directly and give the same logits as their code:
same keys, LayerNorm eps 1e-5, bilinear position-embedding resizing. `variant.yml` is read with
a safe YAML loader that understands the `!!python/tuple` tags `yaml.dump` wrote into it, and
the `.pth` with `weights_only=True`, so nothing in either file can run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from model.checkpoints.errors import CheckpointError
from model.checkpoints.state_dict import load_weights_strict, torch_load_safely
from model.class_sets import DATASETS
from model.config import SegmenterConfig
from model.metadata import ModelMetadata, normalization_stats
from model.modeling.segmenter import Segmenter

VARIANT_FILE = "variant.yml"
# The authors' data configs resize test images into (max_ratio × im_size, im_size), keeping the ratio.
_MAX_RATIOS = {"ade20k": 4, "pascal_context": 8, "cityscapes": 2}
# Classification heads of the backbone, saved by the official code but never used.
_UNUSED_PREFIXES = ("encoder.head.", "encoder.head_dist.")


class _VariantLoader(yaml.SafeLoader):
    """SafeLoader that reads `!!python/tuple` as a list (and nothing else that is unsafe)."""


_VariantLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
)


def read_variant(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"{VARIANT_FILE} not found beside the official checkpoint (looked for {path}); "
            "official Segmenter checkpoints need the variant.yml they were released with"
        )
    try:
        variant = yaml.load(path.read_text(), Loader=_VariantLoader)  # noqa: S506 - safe subclass
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path} is not valid YAML ({exc})") from None
    if not isinstance(variant, dict) or "net_kwargs" not in variant:
        raise CheckpointError(f"{path} has no net_kwargs section; is it a Segmenter variant.yml?")
    return variant


def config_from_variant(net_kwargs: dict[str, Any], source: str = VARIANT_FILE) -> SegmenterConfig:
    """Map the official `net_kwargs` to our SegmenterConfig (trusting values over backbone names)."""
    try:
        image_size = net_kwargs["image_size"]
        if isinstance(image_size, (list, tuple)):
            if len(set(image_size)) != 1:
                raise CheckpointError(f"{source}: non-square image_size {image_size} is not supported")
            image_size = image_size[0]
        d_model = int(net_kwargs["d_model"])
        decoder = dict(net_kwargs.get("decoder", {}))
        decoder_name = decoder.get("name", "linear")
        if "linear" in decoder_name:
            decoder_name = "linear"
        elif decoder_name != "mask_transformer":
            raise CheckpointError(f"{source}: decoder {decoder_name!r} is not supported (linear, mask_transformer)")
        return SegmenterConfig(
            image_size=int(image_size),
            patch_size=int(net_kwargs["patch_size"]),
            embed_dim=d_model,
            depth=int(net_kwargs["n_layers"]),
            num_heads=int(net_kwargs["n_heads"]),
            mlp_ratio=float(net_kwargs.get("d_ff", 4 * d_model)) / d_model,
            distilled=bool(net_kwargs.get("distilled", False)),
            decoder=decoder_name,
            decoder_depth=int(decoder.get("n_layers", 2)),
            num_classes=int(net_kwargs["n_cls"]),
            drop_path_rate=float(net_kwargs.get("drop_path_rate", 0.0)),
            dropout=float(net_kwargs.get("dropout", 0.0)),
            decoder_drop_path_rate=float(decoder.get("drop_path_rate", 0.0)),
            decoder_dropout=float(decoder.get("dropout", 0.0)),
            layer_norm_eps=1e-5,
            pos_embed_interp="bilinear",
        )
    except KeyError as exc:
        raise CheckpointError(f"{source}: net_kwargs lacks {exc.args[0]!r}") from None
    except ValueError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{source}: {exc}") from None


def metadata_from_variant(variant: dict[str, Any], config: SegmenterConfig, source: str) -> ModelMetadata:
    net = variant["net_kwargs"]
    data = variant.get("dataset_kwargs") or {}
    inference = variant.get("inference_kwargs") or {}
    normalization = net.get("normalization") or data.get("normalization") or "vit"
    mean, std = normalization_stats(normalization)
    window = int(inference.get("window_size") or data.get("crop_size") or config.image_size)
    stride = int(inference.get("window_stride") or window)
    dataset = str(data.get("dataset", "")).lower()
    provenance = {"source": "official", "path": source, "backbone": net.get("backbone")}
    im_size = inference.get("im_size") or data.get("image_size")
    test_scale = (_MAX_RATIOS[dataset] * int(im_size), int(im_size)) if dataset in _MAX_RATIOS and im_size else None
    if dataset in DATASETS:
        meta = ModelMetadata.for_dataset(
            dataset, normalization=normalization, window_size=window, window_stride=stride,
            test_scale=test_scale, provenance=provenance,
        )
        if meta.num_classes == config.num_classes:
            return meta
    return ModelMetadata.for_classes(
        [f"class_{i}" for i in range(config.num_classes)], mean=mean, std=std, window_size=window,
        window_stride=stride, dataset=dataset or "unknown", test_scale=test_scale, provenance=provenance,
    )


def load_official_checkpoint(path: str | Path, data: dict | None = None) -> Segmenter:
    """Load the authors' `checkpoint.pth` (+ `variant.yml` in the same folder) in eval mode.

    `data` is the file's content when the caller has already read it (with weights_only=True).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pth"
    if not path.is_file():
        raise CheckpointError(f"no official checkpoint at {path}")
    variant_path = path.parent / VARIANT_FILE
    variant = read_variant(variant_path)
    config = config_from_variant(variant["net_kwargs"], str(variant_path))
    data = torch_load_safely(path) if data is None else data
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state_dict (expected a dict with a 'model' entry)")
    state = {k: v for k, v in state.items() if not k.startswith(_UNUSED_PREFIXES)}
    net = Segmenter(config, metadata=metadata_from_variant(variant, config, str(path)))
    load_weights_strict(net, state, str(path))
    return net.eval()
