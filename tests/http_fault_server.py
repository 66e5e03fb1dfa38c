"""A loopback HTTP file server with injectable faults, for testing download code.

Serves in-memory files on 127.0.0.1 (a free port), with ETag and Last-Modified, HEAD, and
single ``Range: bytes=N-`` / ``bytes=N-M`` requests honouring ``If-Range``. Faults are queued
per path and each is used by one request, in order::

    with FaultServer() as srv:
        srv.add_file("/x.gz", data)
        srv.add_fault("/x.gz", Fault(drop_after=1000))          # headers + 1000 bytes, then close
        srv.add_fault("/x.gz", Fault(status=429, headers={"Retry-After": "2"}))
        srv.add_fault("/x.gz", Fault(ignore_range=True))        # answer 200 to a Range request
        srv.add_fault("/x.gz", Fault(ignore_if_range=True))     # answer 206 even for a changed file
        srv.add_fault("/x.gz", Fault(drop_after=10, then=lambda s: s.add_file("/x.gz", other)))
        srv.url("/x.gz"); srv.requests                          # [(method, path, headers)]

Nothing here reaches beyond the loopback interface.
"""
from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Fault:
    status: int | None = None           # answer this status (with `headers`) and a short body
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None       # send full headers, this many body bytes, then close
    ignore_range: bool = False          # answer 200 with the whole file even to a Range request
    ignore_if_range: bool = False       # serve the Range even when If-Range no longer matches
    then: Callable[["FaultServer"], None] | None = None  # run after the response (e.g. change the file)


@dataclass
class _File:
    data: bytes
    etag: str
    last_modified: str


class FaultServer:
    def __init__(self):
        self.files: dict[str, _File] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._version = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FaultServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add_file(self, path: str, data: bytes) -> None:
        """Add or replace a file; a replaced file gets a new ETag and Last-Modified."""
        with self._lock:
            self._version += 1
            etag = f'"{hashlib.md5(data).hexdigest()[:16]}-{self._version}"'
            self.files[path] = _File(data, etag, formatdate(1_700_000_000 + self._version, usegmt=True))

    def add_fault(self, path: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self.faults.setdefault(path, []).extend([fault] * times)

    def count(self, method: str = "GET", path: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == method and (path is None or p == path))

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(path)
            return queue.pop(0) if queue else None


def _make_handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output clean
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, body: bool):
            path = self.path.split("?", 1)[0]
            with server._lock:
                server.requests.append((self.command, path, dict(self.headers)))
                f = server.files.get(path)
            fault = server._next_fault(path)
            try:
                self._respond(f, fault, body)
            finally:
                if fault and fault.then:
                    fault.then(server)

        def _respond(self, f: _File | None, fault: Fault | None, body: bool):
            if fault and fault.status:
                payload = f"fault {fault.status}\n".encode()
                self.send_response(fault.status)
                for k, v in fault.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)
                return
            if f is None:
                self.send_error(404)
                return
            data, status, extra = f.data, 200, {}
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            fresh = if_range is None or if_range in (f.etag, f.last_modified) or bool(fault and fault.ignore_if_range)
            if rng and fresh and not (fault and fault.ignore_range):
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                if m:
                    start = int(m.group(1))
                    end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status, extra = 206, {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
                    data = data[start:end + 1]
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f.etag)
            self.send_header("Last-Modified", f.last_modified)
            self.send_header("Accept-Ranges", "bytes")
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if not body:
                return
            if fault and fault.drop_after is not None:
                # the announced Content-Length stays the full length: the client must notice
                self.wfile.write(data[:fault.drop_after])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.wfile.write(data)

    return Handler
