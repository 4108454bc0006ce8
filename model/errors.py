"""The base of every error a user can cause and fix: the message names the problem and the fix.

Commands (`cli/main.py`) print such errors as one message, without a traceback; so do they
OSError (a missing file) and ValueError (a bad value). Subclasses live where they are raised:
CheckpointError, ImageError, ExportError, ModelLoadError, ModelsFileError.
"""

from __future__ import annotations


class SegmenterError(Exception):
    """Something the user asked for cannot be done; `str(error)` says what and how to fix it."""
