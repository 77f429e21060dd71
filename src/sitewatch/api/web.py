"""The web dashboard: the site list and a site page (map, timeline, claims, judgements, downloads).

Static files (Leaflet from the npm registry, with its licence; the page's own script and style)
ship inside the package under ``static/``; nothing is fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/sites")


@router.get("/sites", response_class=HTMLResponse)
def sites_page(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/sites/{name}", response_class=HTMLResponse)
def site_page(request: Request, name: str) -> FileResponse:
    return FileResponse(STATIC / "site.html", media_type="text/html")


def mount_static(app) -> None:  # noqa: ANN001 - a FastAPI app
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
