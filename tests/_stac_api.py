"""A small STAC API (landing page, conformance, item search) for watch tests, run with uvicorn.

Run as its own process: ``python _stac_api.py ROOT``; prints the port. Items are read from
``ROOT/items.json`` (a list of STAC item dicts) on every request, so a test adds items by rewriting
that file. ``/search`` (GET or POST) filters by ``intersects``/``bbox``, ``datetime`` (an instant or
an interval, ``..`` open) and ``collections``, honours ``limit`` with ``next`` links (token paging),
and appends each search's parameters as one JSON line to ``ROOT/searches.log``. Malformed items in
``items.json`` are served as they are (the client must cope).
"""

from __future__ import annotations

import json
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import shapely
import uvicorn
from fastapi import FastAPI, Request
from shapely.geometry import box, shape

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _time(text: str) -> datetime | None:
    return None if text in ("", "..") else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(item: Any, area: Any, start: datetime | None, end: datetime | None, collections: list[str] | None) -> bool:
    if not isinstance(item, dict):
        return True
    try:
        if area is not None and not shape(item["geometry"]).intersects(area):
            return False
        when = _time(item["properties"]["datetime"])
        if start is not None and when < start or end is not None and when > end:
            return False
    except Exception:  # noqa: BLE001 - malformed items are served as they are
        return True
    return collections is None or item.get("collection") in collections


def make_app(root: Path) -> FastAPI:
    app = FastAPI()

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @app.get("/")
    def landing(request: Request) -> dict[str, Any]:
        b = base(request)
        return {
            "type": "Catalog", "stac_version": "1.0.0", "id": "watch-test-api", "description": "STAC API for watch tests",
            "conformsTo": CONFORMS,
            "links": [
                {"rel": "self", "href": f"{b}/", "type": "application/json"},
                {"rel": "root", "href": f"{b}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{b}/conformance", "type": "application/json"},
                {"rel": "search", "href": f"{b}/search", "type": "application/geo+json", "method": "GET"},
                {"rel": "search", "href": f"{b}/search", "type": "application/geo+json", "method": "POST"},
            ],
        }  # fmt: skip

    @app.get("/conformance")
    def conformance() -> dict[str, Any]:
        return {"conformsTo": CONFORMS}

    def search(request: Request, params: dict[str, Any]) -> dict[str, Any]:
        with open(root / "searches.log", "a") as f:
            f.write(json.dumps(params) + "\n")
        items = json.loads((root / "items.json").read_text()) if (root / "items.json").exists() else []
        area = None
        if params.get("intersects"):
            area = shape(params["intersects"] if isinstance(params["intersects"], dict) else json.loads(params["intersects"]))
        elif params.get("bbox"):
            bb = params["bbox"] if isinstance(params["bbox"], list) else [float(v) for v in str(params["bbox"]).split(",")]
            area = box(*bb[:4])
        if area is not None:
            shapely.prepare(area)
        start = end = None
        if params.get("datetime"):
            parts = str(params["datetime"]).split("/")
            start, end = (_time(parts[0]), _time(parts[-1])) if len(parts) == 2 else (_time(parts[0]), _time(parts[0]))
        cols = params.get("collections")
        if isinstance(cols, str):
            cols = cols.split(",")
        found = [it for it in items if _matches(it, area, start, end, cols)]
        limit = int(params.get("limit") or 10)
        offset = int(params.get("token") or 0)
        page = found[offset : offset + limit]
        links = []
        if offset + limit < len(found):
            links.append({"rel": "next", "href": f"{base(request)}/search", "method": "POST", "type": "application/geo+json",
                          "body": {**params, "token": str(offset + limit)}, "merge": False})  # fmt: skip
        return {"type": "FeatureCollection", "features": page, "links": links, "numberReturned": len(page)}

    @app.get("/search")
    def search_get(request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        return search(request, params)

    @app.post("/search")
    async def search_post(request: Request) -> dict[str, Any]:
        return search(request, await request.json())

    return app


def main() -> None:
    root = Path(sys.argv[1])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(make_app(root), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
