"""`segmenter weights list|fetch`: the public checkpoints by name."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    w = subparsers.add_parser("weights", help="list and fetch trained checkpoints by name",
                              description="Trained Segmenter checkpoints by name (model/zoo/registry.yaml). "
                              "SEGMENTER_CACHE_DIR: where they are kept; SEGMENTER_WEIGHTS_MIRROR=http://host:port/"
                              "prefix: fetch from a mirror; SEGMENTER_WEIGHTS_REGISTRY: extra registry files.")
    sub = w.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="every registry entry, and whether it is cached")
    ls.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    ls.add_argument("--dir", type=Path, help="cache folder (default: $SEGMENTER_CACHE_DIR or the user cache)")
    ls.set_defaults(func=run_list)
    fetch = sub.add_parser("fetch", help="download, verify and convert checkpoints; prints each folder")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--dir", type=Path, help="cache folder (default: $SEGMENTER_CACHE_DIR or the user cache)")
    fetch.set_defaults(func=run_fetch)


def _size(entry) -> str:
    """The published size, else the estimate from the parameter count (marked ~), else ?."""
    if entry.size_bytes:
        return f"{entry.size_bytes / 1e6:,.0f} MB"
    return f"~{entry.size_estimate / 1e6:,.0f} MB" if entry.size_estimate else "?"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Columns as wide as their widest cell (names grow; registries of your own add longer ones);
    the columns in `right` aligned right, the last one left as it is."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(cell.rjust(w) if i in right else cell if i == len(row) - 1 else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
            for row in (header, *rows)]


def run_list(args: argparse.Namespace) -> int:
    from model.zoo import cached_folder, default_cache_dir, load_registry
    from model.zoo.fetch import extra_registries

    cache = args.dir or default_cache_dir()
    registry = load_registry(extra_registries())
    rows = [{"name": e.name, "source": e.source, "architecture": e.architecture, "dataset": e.dataset,
             "miou": e.miou.get("single"), "miou_multiscale": e.miou.get("multi"), "size_bytes": e.size_bytes,
             "size_estimate": e.size_estimate, "status": e.status, "cached": cached_folder(e, cache) is not None,
             "url": e.files[0].url}
            for e in registry.values()]
    if args.json:
        print(json.dumps({"cache_dir": str(cache), "weights": rows}, indent=2))
        return 0
    cells = []
    for row, entry in zip(rows, registry.values(), strict=True):
        miou = f"{row['miou']:.1f}/{row['miou_multiscale']:.1f}" if row["miou"] else "-"
        note = "" if entry.status == "available" else f"  ({entry.note})"
        cells.append([row["name"], row["source"], row["architecture"], row["dataset"], miou, _size(entry),
                      ("yes" if row["cached"] else "no") + note])
    for line in _table(["name", "source", "architecture", "dataset", "mIoU", "size", "cached"], cells, right={4, 5}):
        print(line)
    print(f"cache: {cache}  (~: the fp32 weights' size from the parameter count; the file may be larger)")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from model.zoo import fetch

    for name in args.names:
        bars: dict[str, tqdm] = {}

        def progress(file_name: str, done: int, total: int | None, bars=bars) -> None:
            bar = bars.get(file_name)
            if bar is None:
                bar = bars[file_name] = tqdm(total=total, desc=file_name, unit="B", unit_scale=True, file=sys.stderr)
            bar.update(done - bar.n)

        try:
            folder = fetch(name, args.dir, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
        print(folder)
    return 0
