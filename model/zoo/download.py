"""Download one file: resumable, verified, and never a partial file where the file is expected.

Bytes go to `<dest>.part`; a second call after an interruption asks the server for the rest
(`Range`), or starts over when the server does not honour it. Only a complete file whose sha256
starts with the expected prefix is renamed to `dest`; a mismatch deletes it and raises.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from model.checkpoints import file_sha256
from model.zoo.registry import ZooError

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)
_CHUNK = 1 << 20


def download(url: str, dest: Path, sha256_prefix: str | None = None, progress: Progress | None = None,
             timeout: float = 60) -> str:
    """Fetch `url` to `dest` (resuming `<dest>.part`); returns the file's sha256.

    Raises ZooError naming the URL: unreachable host, HTTP error, interrupted transfer (run again
    to resume), or a hash that does not match (the file is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            if not resumed:
                have = 0  # the server sends the whole file: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as out:
                done = have
                while block := response.read1(_CHUNK):  # what has arrived: progress as it comes
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
    except urllib.error.HTTPError as exc:
        raise ZooError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        kept = part.stat().st_size if part.exists() else 0
        raise ZooError(f"downloading {url} failed ({type(exc).__name__}: {reason}); "
                       + (f"{kept:,} bytes are kept in {part}: run again to resume" if kept else
                          "check the network")) from None  # fetch.py adds what to do about mirrors
    if total is not None and done < total:
        raise ZooError(f"downloading {url} stopped at {done:,} of {total:,} bytes; run again to resume")
    digest = file_sha256(part)
    if sha256_prefix and not digest.startswith(sha256_prefix):
        part.unlink()
        raise ZooError(f"{url} has sha256 {digest[:12]}…, not the expected {sha256_prefix}…: the file was deleted. "
                       "The host (or mirror) serves a different file")
    os.replace(part, dest)
    return digest
