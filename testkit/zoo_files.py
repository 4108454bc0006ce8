"""Weights as a registry publishes them, for the download tests (`model.zoo`, `zoo:` models in the
service): an mmseg zoo file and an official release, and a registry file naming them on a host.

published_weights   the files (URL path -> bytes) a weights server serves, and the zoo file's hash prefix
write_registry      a registry.yaml with `tiny-mmseg` and `tiny-official` at a host
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
import yaml

from testkit.mmseg_checkpoints import to_mmseg
from testkit.official_files import official_net_kwargs, write_official_checkpoint


def published_weights(root: Path, net: torch.nn.Module) -> tuple[dict[str, bytes], str]:
    """`net` (150 classes, mmseg numerics) as an mmseg zoo file, and the tiny official release,
    under the URL paths `write_registry` names: (files, the zoo file's sha256 prefix)."""
    buffer = io.BytesIO()
    torch.save({"meta": {"CLASSES": [f"c{i}" for i in range(150)], "PALETTE": [[i, i, i] for i in range(150)]},
                "state_dict": to_mmseg(net.state_dict())}, buffer)
    mmseg = buffer.getvalue()
    prefix = hashlib.sha256(mmseg).hexdigest()[:8]
    write_official_checkpoint(root / "official", official_net_kwargs(), dataset="ade20k")
    files = {f"/zoo/tiny_mmseg_20260101-{prefix}.pth": mmseg,
             "/authors/tiny/checkpoint.pth": (root / "official" / "checkpoint.pth").read_bytes(),
             "/authors/tiny/variant.yml": (root / "official" / "variant.yml").read_bytes()}
    return files, prefix


def write_registry(folder: Path, host: str, prefix: str, wrong_hash: bool = False) -> str:
    """folder/registry.yaml naming the published files at `host`; its path."""
    common = dict(dataset="ade20k", classes=150, window=64, stride=32, test_scale=[2048, 512], size_bytes=None,
                  license="MIT", status="available", note="test entry")
    entries = [
        {"name": "tiny-mmseg", "source": "mmsegmentation", "architecture": "Seg-T-Mask/16",
         "miou": {"single": 12.3, "multi": 13.4}, **common,
         "files": [{"url": f"{host}/zoo/tiny_mmseg_20260101-{prefix}.pth",
                    "sha256_prefix": "00000000" if wrong_hash else prefix}]},
        {"name": "tiny-official", "source": "official", "architecture": "Seg-T-Mask/16",
         "miou": {"single": 1.0, "multi": 2.0}, **{**common, "stride": 64},
         "files": [{"url": f"{host}/authors/tiny/checkpoint.pth", "sha256_prefix": None},
                   {"url": f"{host}/authors/tiny/variant.yml", "sha256_prefix": None}]},
    ]
    path = Path(folder) / "registry.yaml"
    path.write_text(yaml.safe_dump(entries))
    return str(path)
