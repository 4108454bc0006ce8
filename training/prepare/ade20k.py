"""Download ADE20K (SceneParsing, 150 classes) into DATA/ADEChallengeData2016.

    python -m training.prepare.ade20k --data data
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.prepare.common import download, extract, require_free_space

URL = "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    args = parser.parse_args()
    require_free_space(args.data, 2.5)
    archive = download(URL, args.data / "downloads" / "ADEChallengeData2016.zip")
    extract(archive, args.data)
    print(f"ready: {args.data / 'ADEChallengeData2016'} (use data.dataset=ade20k data.root=that folder)")


if __name__ == "__main__":
    main()
