"""A static file server with HTTP range requests, started by the tests on 127.0.0.1.

``/<name>`` serves files of the folder (``Range: bytes=a-b`` answered with 206);
``/truncated/<name>`` announces the whole length and closes half way, as a broken
connection does. Requests and bytes sent are counted per run.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Traffic:
    requests: int = 0
    bytes: int = 0


def handler(folder: Path, traffic: Traffic) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class RangeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _target(self) -> tuple[Path | None, bool]:
            name = self.path.split("?")[0].lstrip("/")
            truncated = name.startswith("truncated/")
            name = name.removeprefix("truncated/")
            path = folder / name
            return (path if path.is_file() else None), truncated

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path, truncated = self._target()
            with lock:
                traffic.requests += 1
            if path is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            size = os.path.getsize(path)
            start, end = 0, size - 1
            match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match:
                start = int(match[1])
                end = min(int(match[2]) if match[2] else size - 1, size - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("ETag", f'"{int(os.path.getmtime(path) * 1e9)}-{size}"')
            self.end_headers()
            if not body:
                return
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start + 1)
            if truncated:
                data = data[: len(data) // 2]
            self.wfile.write(data)
            with lock:
                traffic.bytes += len(data)
            if truncated:
                self.close_connection = True

    return RangeHandler


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (GDAL closing a connection) are not errors here."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[tuple[str, Traffic]]:
    """Serve ``folder`` on a free port of 127.0.0.1: (base URL, traffic counters)."""
    traffic = Traffic()
    server = QuietServer(("127.0.0.1", 0), handler(folder, traffic))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", traffic
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
