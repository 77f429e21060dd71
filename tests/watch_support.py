"""Loopback servers and synthetic passes for the watch tests.

* :func:`block_pass`: an 800 x 600 px UTM GeoTIFF (tiled, a COG layout) near Hmeimim at 0.5 m, dark
  grey ground with ``n`` pure red 4x4 blocks on a grid: the block model of :mod:`detect_support` finds exactly ``n`` aircraft.
* :class:`Servers`: a STAC API (``_stac_api.py``, uvicorn, own process) and a static HTTP server with
  Range support (``_http_stub.py``, own process: GDAL ``/vsicurl/`` reads the COGs from it).
* :class:`WebhookReceiver`: a local HTTP receiver that checks the HMAC-SHA256 signature of each POST.
* :class:`SmtpSink`: a local SMTP server (aiosmtpd) keeping the messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, mapping

from sitewatch.sites import Site, add_site

UTM = "EPSG:32636"
UTM_T = Affine(0.5, 0, 767000.0, 0, -0.5, 3922000.0)
GRID = [(x, y) for y in range(100, 520, 80) for x in range(100, 720, 80)]  # 48 places, 4-px aligned
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
TESTS = Path(__file__).resolve().parent


def lonlat_polygon(transform: Affine, x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A WGS84 polygon whose corners are the given pixels of a scene with ``transform`` (EPSG:32636)."""
    to = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    return Polygon([to.transform(*(transform * (x, y))) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))])


def add_watch_site(name: str = "watchbase") -> Site:
    """A user site whose AOI is the inner part of the block passes."""
    return add_site(Site(name, f"Watch test base {name}", "airbase", "SY", lonlat_polygon(UTM_T, 40, 40, 760, 560)))


def block_pass(path: Path, n: int, acquired: datetime, *, transform: Affine = UTM_T) -> Path:
    """Write a pass with ``n`` blocks (see module docstring) and return its path."""
    rgb = np.full((600, 800, 3), 30, np.uint8)  # dark grey ground: observed (not zero fill), no aircraft score
    for x, y in GRID[:n]:
        rgb[y : y + 4, x : x + 4] = (255, 0, 0)
    profile = dict(driver="GTiff", width=800, height=600, count=3, dtype="uint8", crs=UTM, transform=transform,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))
        dst.update_tags(TIFFTAG_DATETIME=acquired.strftime("%Y:%m:%d %H:%M:%S"))
        dst.build_overviews([2, 4])
    return path


def stac_item(item_id: str, href: str, acquired: datetime, *, transform: Affine = UTM_T, **props: Any) -> dict[str, Any]:
    """A STAC item of a block pass whose visual asset is at ``href``."""
    fp = lonlat_polygon(transform, 0, 0, 800, 600)
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": item_id, "collection": "blocks",
        "geometry": mapping(fp), "bbox": list(fp.bounds),
        "properties": {"datetime": acquired.isoformat().replace("+00:00", "Z"), "platform": "testsat", **props},
        "links": [],
        "assets": {"visual": {"href": href, "type": COG, "roles": ["visual"]}},
    }  # fmt: skip


class _Proc:
    def __init__(self, script: str, root: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(TESTS / script), str(root)], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


class Servers:
    """The STAC API (items in ``root/api/items.json``) and the COG server (files in ``root/cogs``)."""

    def __init__(self, root: Path) -> None:
        self.api_root, self.cog_root = root / "api", root / "cogs"
        self.api_root.mkdir(parents=True, exist_ok=True)
        self.cog_root.mkdir(parents=True, exist_ok=True)
        self.items: list[Any] = []
        self.publish()
        self._api = _Proc("_stac_api.py", self.api_root)
        self._cogs = _Proc("_http_stub.py", self.cog_root)
        self.api_url, self.cog_url = self._api.url, self._cogs.url

    def add_pass(self, item_id: str, n: int, acquired: datetime, **props: Any) -> dict[str, Any]:
        """Write a block pass COG, serve it, and publish its item on the API."""
        block_pass(self.cog_root / f"{item_id}.tif", n, acquired)
        item = stac_item(item_id, f"{self.cog_url}/{item_id}.tif", acquired, **props)
        self.add_item(item)
        return item

    def add_item(self, item: Any) -> None:
        self.items.append(item)
        self.publish()

    def publish(self) -> None:
        tmp = self.api_root / "items.json.tmp"
        tmp.write_text(json.dumps(self.items))
        tmp.replace(self.api_root / "items.json")

    def searches(self) -> list[dict[str, Any]]:
        log = self.api_root / "searches.log"
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    def cog_requests(self) -> list[str]:
        log = self.cog_root / "requests.log"
        return log.read_text().splitlines() if log.exists() else []

    def close(self) -> None:
        self._api.close()
        self._cogs.close()


class WebhookReceiver:
    """Receives webhook POSTs, checks their signature, answers ``fail_first`` requests with HTTP 503."""

    def __init__(self, secret: bytes, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                if outer.requests <= outer.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                want = "sha256=" + hmac.new(outer.secret, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers.get("X-Sitewatch-Signature", "")):
                    outer.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                outer.received.append({"alert": self.headers.get("X-Sitewatch-Alert"), **json.loads(body)})
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A loopback TCP port that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """A local SMTP server (aiosmtpd) keeping every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
                import email

                outer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
