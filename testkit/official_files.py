"""Write checkpoints in the official release layout (checkpoint.pth + variant.yml), as the
authors' training script does: `torch.save` of a dict with the state_dict under "model", and
`yaml.dump` of Python objects (so image_size is a tuple and gets a `!!python/tuple` tag)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from testkit.official_segmenter import OfficialSegmenter, official_state_dict, randomize_


def official_net_kwargs(*, size=64, patch=16, dim=64, depth=2, heads=1, n_cls=5, decoder="mask_transformer",
                        distilled=False, dec_layers=2) -> dict:
    dec = {"name": decoder, "drop_path_rate": 0.0, "dropout": 0.1}
    if decoder == "mask_transformer":
        dec["n_layers"] = dec_layers
    return {
        "backbone": "vit_tiny_patch16_384" if not distilled else "deit_tiny_distilled_patch16_224",
        "image_size": (size, size),
        "patch_size": patch,
        "d_model": dim,
        "n_heads": heads,
        "n_layers": depth,
        "normalization": "deit" if distilled else "vit",
        "distilled": distilled,
        "drop_path_rate": 0.1,
        "dropout": 0.0,
        "n_cls": n_cls,
        "decoder": dec,
    }


def write_official_checkpoint(folder: Path, net_kwargs: dict, seed: int = 0, dataset: str = "ade20k",
                              window=None) -> OfficialSegmenter:
    """Create a random reference model, save it in the official layout, and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    ref = randomize_(OfficialSegmenter(net_kwargs), seed).eval()
    size = net_kwargs["image_size"][0]
    torch.save({"model": official_state_dict(ref), "epoch": 3, "n_cls": net_kwargs["n_cls"],
                "optimizer": {"state": {}, "param_groups": []}}, folder / "checkpoint.pth")
    variant = {
        "world_batch_size": 8, "version": "normal", "resume": True,
        "dataset_kwargs": {"dataset": dataset, "image_size": size, "crop_size": size, "batch_size": 8,
                           "normalization": net_kwargs["normalization"], "split": "train"},
        "net_kwargs": net_kwargs,
        "inference_kwargs": {"im_size": size, "window_size": window or size, "window_stride": window or size},
    }
    (folder / "variant.yml").write_text(yaml.dump(variant))
    return ref
