"""The one error every checkpoint reader raises for a file it cannot use."""

from __future__ import annotations

from model.errors import SegmenterError


class CheckpointError(SegmenterError, ValueError):
    """A checkpoint cannot be used: missing file, wrong format, wrong keys or shapes.

    The message names the file, the problem and, where there is one, the fix.
    """
