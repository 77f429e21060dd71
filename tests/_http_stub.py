"""A static HTTP server with range support for tests (GDAL /vsicurl/ reads COGs by ranges).

Run as a separate process (GDAL may hold the GIL while it waits on a socket, so an in-process
server thread could deadlock): ``python _http_stub.py ROOT``; prints the port, serves ROOT, maps
``/`` to ``ROOT/index.json`` and ``/search`` (GET or POST) to ``ROOT/search.json``, and appends each
request line (with its Range header, and POST body) to ``ROOT/requests.log``.
"""

from __future__ import annotations

import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROUTES = {"/": "index.json", "/search": "search.json"}


class Handler(BaseHTTPRequestHandler):
    root = Path(".")

    def log_message(self, *args: object) -> None:
        pass

    def _log(self, line: str) -> None:
        with open(self.root / "requests.log", "a") as f:
            f.write(line.replace("\n", " ") + "\n")

    def _send(self, body: bytes, ctype: str, status: int = 200, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._log(f"GET {self.path} {self.headers.get('Range') or ''}".rstrip())
        self._route()

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self._log(f"POST {self.path} {self.rfile.read(n).decode()}")
        self._route()

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        f = self.root / ROUTES.get(path, path.lstrip("/"))
        if not f.is_file():
            self._send(b"not found", "text/plain", 404)
            return
        data = f.read_bytes()
        ctype = "application/json" if f.suffix == ".json" else "application/octet-stream"
        m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
        if m:
            a = int(m.group(1))
            b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            self._send(data[a : b + 1], ctype, 206, {"Content-Range": f"bytes {a}-{b}/{len(data)}"})
        else:
            self._send(data, ctype)


def main() -> None:
    Handler.root = Path(sys.argv[1])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
