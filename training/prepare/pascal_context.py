"""Download Pascal Context (59 classes + background, as prepared for mmseg) into DATA/VOCdevkit/VOC2010.

    pip install git+https://github.com/zhanghang1989/detail-api.git#subdirectory=PythonAPI
    python -m training.prepare.pascal_context --data data

Downloads VOC2010 trainval and the Context annotations (trainval_merged.json), then writes
SegmentationClassContext/*.png (the 59 most frequent classes, 0 = background) and
ImageSets/SegmentationContext/{train,val}.txt with the Detail API, as mmseg's converter does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from training.prepare.common import download, extract, require_free_space

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar"
JSON_URL = "https://codalabuser.blob.core.windows.net/public/trainval_merged.json"
# PASCAL-Context ids (of its 459 classes) kept as the 59 classes. As mmseg's converter, label k is
# the k-th id in *sorted* order (0 = background), so official and mmseg checkpoints, which were
# trained on masks made that way, evaluate correctly on these masks.
CONTEXT_59 = [2, 259, 260, 415, 324, 9, 258, 144, 18, 19, 22, 23, 397, 25, 284, 158, 159, 416, 33, 162, 420, 454,
              295, 296, 427, 44, 45, 46, 308, 59, 440, 445, 31, 232, 65, 354, 424, 68, 326, 72, 458, 34, 207, 80,
              355, 85, 347, 220, 349, 360, 98, 187, 104, 105, 366, 189, 368, 113, 115]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    try:
        from detail import Detail
    except ImportError:
        raise SystemExit("the Detail API is needed to convert the annotations; see this script's docstring") from None
    require_free_space(args.data, 4)
    extract(download(VOC_URL, args.data / "downloads" / "VOCtrainval_03-May-2010.tar"), args.data)
    root = args.data / "VOCdevkit" / "VOC2010"
    annotations = download(JSON_URL, root / "trainval_merged.json")
    table = np.zeros(460, dtype=np.uint8)  # ids outside the 59 classes -> background 0
    for index, context_id in enumerate(sorted(CONTEXT_59)):
        table[context_id] = index + 1
    (root / "SegmentationClassContext").mkdir(exist_ok=True)
    (root / "ImageSets" / "SegmentationContext").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        detail = Detail(str(annotations), str(root / "JPEGImages"), split)
        names = []
        for entry in tqdm(detail.getImgs(), desc=f"Pascal Context {split}", unit="img"):
            mask = table[np.asarray(detail.getMask(entry))]
            name = entry["file_name"].rsplit(".", 1)[0]
            Image.fromarray(mask).save(root / "SegmentationClassContext" / f"{name}.png")
            names.append(name)
        (root / "ImageSets" / "SegmentationContext" / f"{split}.txt").write_text("\n".join(names) + "\n")
    print(f"ready: {root} (data.dataset=pascal_context data.root=that folder)")


if __name__ == "__main__":
    main()
