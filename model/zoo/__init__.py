"""Trained weights by name: the registry of public checkpoints, verified downloads, a cache.

registry.yaml (the data), registry.py (entries, mirrors), download.py (resumable, verified),
fetch.py (download -> convert -> cache). The `segmenter weights` command is cli/weights.py.
"""

from model.zoo.fetch import cached_folder, default_cache_dir, fetch, fetch_entry
from model.zoo.registry import ZooEntry, ZooError, ZooFile, get_entry, load_registry, mirrored

__all__ = ["ZooEntry", "ZooError", "ZooFile", "cached_folder", "default_cache_dir", "fetch", "fetch_entry",
           "get_entry", "load_registry", "mirrored"]
