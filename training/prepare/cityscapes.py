"""Download Cityscapes (fine annotations) into DATA/cityscapes. Needs a cityscapes-dataset.com
account: `pip install cityscapesscripts` and set CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD.

    python -m training.prepare.cityscapes --data data

The 19-class `*_labelTrainIds.png` are written from `*_labelIds.png` (the loader can also
convert on the fly, but precomputed files load faster).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from training.data.layouts import cityscapes_label_ids_to_train_ids
from training.prepare.common import extract, require_free_space

PACKAGES = ["gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip"]


def write_train_ids(root: Path) -> int:
    files = sorted((root / "gtFine").rglob("*_gtFine_labelIds.png"))
    for path in tqdm(files, desc="labelIds -> labelTrainIds", unit="img"):
        label = np.asarray(Image.open(path)).astype(np.int64)
        out = path.with_name(path.name.replace("_labelIds.png", "_labelTrainIds.png"))
        Image.fromarray(cityscapes_label_ids_to_train_ids(label).astype(np.uint8)).save(out)
    return len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    root = args.data / "cityscapes"
    require_free_space(args.data, 13)
    downloads = args.data / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        if not (downloads / package).is_file():
            try:  # csDownload reads CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD from the environment
                subprocess.run(["csDownload", "-d", str(downloads), package], check=True)
            except FileNotFoundError:
                raise SystemExit("csDownload not found: pip install cityscapesscripts, or download "
                                 f"{', '.join(PACKAGES)} by hand into {downloads}") from None
        extract(downloads / package, root)
    print(f"wrote {write_train_ids(root)} train-id maps; ready: {root}")


if __name__ == "__main__":
    main()
