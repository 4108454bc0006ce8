"""A local HTTP file server for the weight-download tests: Range support on demand, connections
dropped halfway, transfers held midway, and a record of every request. Loopback only."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class WeightsServer:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> content
    ranges: bool = True  # honour Range requests (206)
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before hanging up (once)
    hold_at: dict[str, tuple[int, threading.Event]] = field(default_factory=dict)  # path -> (bytes, release)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    held: threading.Event = field(default_factory=threading.Event)  # a held transfer reached its point

    def __enter__(self) -> WeightsServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                owner.requests.append((self.path, self.headers.get("Range")))
                content = owner.files.get(self.path)
                if content is None:
                    self.send_error(404)
                    return
                start = 0
                if owner.ranges and (wanted := self.headers.get("Range", "")).startswith("bytes="):
                    start = int(wanted[len("bytes="):].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
                else:
                    self.send_response(200)
                body = content[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if (cut := owner.drop_after.pop(self.path, None)) is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return  # the client sees fewer bytes than Content-Length announced
                if (hold := owner.hold_at.get(self.path)) is not None:
                    at, release = hold
                    self.wfile.write(body[:at])
                    self.wfile.flush()
                    owner.held.set()
                    release.wait(60)
                    body = body[at:]
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for _, release in self.hold_at.values():
            release.set()
        self.server.shutdown()
        self.server.server_close()
