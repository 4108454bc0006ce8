"""Read PyTorch checkpoint files that `weights_only=True` refuses, without running any of their code.

mmengine's Runner writes checkpoints (`iter_N.pth`, `best_mIoU_iter_N.pth`) that hold, beside
the weights, a `message_hub` of mmengine objects and numpy arrays; torch's weights-only loader
rejects them, and `weights_only=False` would let any file run arbitrary code. This reader opens
the zip archive `torch.save` writes and unpickles `data.pkl` with an unpickler that:

- rebuilds tensors (from the archive's storages), OrderedDicts and plain values;
- turns every other global — mmengine classes, numpy functions, even `builtins.getattr` — into
  an inert `Placeholder` that records its name and arguments and does nothing else.

So nothing in the file is ever imported or called; the weights come back as tensors and the
rest as data that can be inspected but not executed.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

# Storage classes torch.save names -> their dtype.
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
# The only callables the unpickler may return: they build tensors and containers, nothing else.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch.Size,
}


class Placeholder:
    """Stands for an object of a class this reader does not rebuild; never runs its code.

    Each unknown global becomes its own subclass (named after it, `qualified_name` set), so that
    pickle can instantiate it, call it or set its state — all of which only record data.
    """

    qualified_name = "?"
    args: tuple = ()
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:  # e.g. builtins.getattr(...)(...)
        return type(self)(*args)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # pickle's SETITEMS on dict subclasses
        pass

    def append(self, value: Any) -> None:  # ...and APPENDS on list subclasses
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<not loaded: {self.qualified_name}>"


def _placeholder_type(qualified_name: str) -> type[Placeholder]:
    return type(qualified_name.rsplit(".", 1)[-1], (Placeholder,), {"qualified_name": qualified_name})


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: io.BufferedIOBase, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(data)
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, torch.UntypedStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]  # only ever used as a tag in persistent ids
        return _placeholder_type(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, dtype, key, _location, _numel = pid
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"storage {key} has an unknown type")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            self.storages[key] = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else \
                torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=self.storages[key], dtype=dtype, _internal=True)


def load_restricted(path: str | Path) -> Any:
    """The content of a `torch.save` zip file, tensors rebuilt, every other object a Placeholder.

    Raises ValueError if the file is not a torch zip archive (the legacy pre-1.6 format is not read).
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a PyTorch zip archive") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path} is not a PyTorch zip archive (no data.pkl)")
        prefix = pickles[0][: -len("/data.pkl")]
        with archive.open(pickles[0]) as data:
            return _Unpickler(io.BufferedReader(data), archive, prefix).load()
