"""Routes that analyse a site: comparison of two passes, timeline, assessment, report, exports.

Each calls the library function the matching CLI command calls; results that take seconds
(comparisons, the report data) are cached until the site's stored passes or claims change.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from sitewatch.api._params import MAX_ID
from sitewatch.api.context import ServerContext
from sitewatch.api.errors import BadParameterError
from sitewatch.api.security import require_read
from sitewatch.compare import Comparison
from sitewatch.errors import CompareError, SitewatchError
from sitewatch.report.exports import FORMATS

if TYPE_CHECKING:
    from sitewatch.report import ReportData

router = APIRouter(prefix="/api", tags=["analysis"])

#: Media type of each export format.
EXPORT_MEDIA = {
    "geojson": "application/geo+json",
    "geoparquet": "application/vnd.apache.parquet",
    "kml": "application/vnd.google-earth.kml+xml",
    "csv": "text/csv",
    "flatgeobuf": "application/octet-stream",
    "gpkg": "application/geopackage+sqlite3",
}


def ctx_of(request: Request) -> ServerContext:
    return request.app.state.ctx


def comparison(ctx: ServerContext, site: Any, a_id: int | None, b_id: int | None, pixels: bool) -> Comparison:
    """The comparison of two passes of ``site`` (default: the last two), cached per pass pair.

    Raises:
        CompareError: fewer than two passes, or the passes cannot be compared.
        UnknownPassError: a pass id that is not one of the site's.
    """
    passes = ctx.passes(site)
    if a_id is None and b_id is None:
        if len(passes) < 2:
            raise CompareError(f"site '{site.name}' has {len(passes)} stored pass(es); comparing needs two")
        a, b = passes[-2], passes[-1]
    elif a_id is None or b_id is None:
        raise BadParameterError("a" if a_id is None else "b", "give both pass ids a and b, or neither")
    else:
        a, b = ctx.pass_of_site(site, a_id), ctx.pass_of_site(site, b_id)
    if a.id == b.id:
        raise BadParameterError("b", f"a and b name the same pass ({a.id})")
    from sitewatch.compare import compare_passes

    key = (a.id, a.created, b.id, b.created, pixels)
    return ctx.comparisons.get_or_make(key, lambda: compare_passes(a, b, site, read_pixels=pixels))


@router.get("/sites/{name}/compare", dependencies=[Depends(require_read)])
def compare(
    request: Request,
    name: str,
    a: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="earlier pass id (default: the one before the latest)")
    ] = None,
    b: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="later pass id (default: the latest)")
    ] = None,
    pixels: Annotated[
        bool, Query(description="read the scenes: registration by image and pixel change (slower)")
    ] = False,
) -> dict[str, Any]:
    """What arrived, departed, remained or moved between two passes of a site."""
    ctx = ctx_of(request)
    c = comparison(ctx, ctx.site(name), a, b, pixels)
    return c.to_dict()


@router.get("/sites/{name}/timeline", dependencies=[Depends(require_read)])
def site_timeline(request: Request, name: str) -> list[dict[str, Any]]:
    """Counts per pass and the changes since the previous pass, oldest first."""
    from sitewatch.compare import timeline

    ctx = ctx_of(request)
    site = ctx.site(name)
    passes = ctx.passes(site)
    if not passes:
        raise CompareError(f"no stored passes of site '{site.name}'")
    return timeline(passes, site)


def report_data(ctx: ServerContext, name: str) -> ReportData:
    """The :class:`~sitewatch.report.ReportData` of a site, cached until its passes or claims change."""
    from sitewatch.report import build_report_data

    site = ctx.site(name)
    if not ctx.passes(site) and not ctx.store.list_claims(site.name):
        raise CompareError(f"nothing to assess for site '{site.name}': no passes and no claims in the store")
    return ctx.reports.get_or_make(ctx.state_key(site), lambda: build_report_data(ctx.store, site))


@router.get("/sites/{name}/assessment", dependencies=[Depends(require_read)])
def assessment(request: Request, name: str) -> Any:
    """The report's JSON twin: key judgements with evidence, hypotheses (ACH), indicators, claims checked."""
    from sitewatch.report import report_json

    return json.loads(report_json(report_data(ctx_of(request), name)))


@router.get("/sites/{name}/report.{fmt}", dependencies=[Depends(require_read)], response_class=Response,
            responses={200: {"content": {"text/html": {}, "application/pdf": {}}}})  # fmt: skip
def report(request: Request, name: str, fmt: str) -> Response:
    """The analyst's report as self-contained HTML or A4 PDF (``fmt`` html or pdf)."""
    from sitewatch.report import html_to_pdf, render_html

    if fmt not in ("html", "pdf"):
        raise BadParameterError("fmt", f"{fmt!r}: expected html or pdf")
    html = render_html(report_data(ctx_of(request), name))
    if fmt == "html":
        return Response(html, media_type="text/html; charset=utf-8")
    disposition = f'attachment; filename="{name}-report.pdf"'
    return Response(
        html_to_pdf(html), media_type="application/pdf", headers={"Content-Disposition": disposition}
    )


@router.get("/sites/{name}/export/{fmt}", dependencies=[Depends(require_read)], response_class=FileResponse,
            responses={200: {"content": {m: {} for m in EXPORT_MEDIA.values()}}})  # fmt: skip
def export(
    request: Request,
    name: str,
    fmt: str,
    pass_id: Annotated[int | None, Query(alias="pass", ge=1, le=MAX_ID)] = None,
) -> FileResponse:
    """The detections of a site (or of one pass) as a GIS file: geojson, geoparquet, kml, csv, flatgeobuf."""
    from sitewatch.report.exports import export_passes

    files = sorted(n for n, f in FORMATS.items() if not f.folder)  # a folder (STAC) is not one download
    if fmt not in files:
        raise BadParameterError("fmt", f"{fmt!r}: expected one of {', '.join(files)}")
    ctx = ctx_of(request)
    site = ctx.site(name)
    passes = [ctx.pass_of_site(site, pass_id)] if pass_id is not None else ctx.passes(site)
    if not passes:
        raise CompareError(f"no stored passes of site '{site.name}' to export")
    tmp = Path(tempfile.mkdtemp(prefix="sitewatch-export-"))
    filename = f"{site.name}-detections.{FORMATS[fmt].suffix.lstrip('.')}"
    try:
        path = export_passes(passes, site, fmt, tmp / filename)
    except SitewatchError:
        _remove(tmp)
        raise
    return FileResponse(path, media_type=EXPORT_MEDIA.get(fmt, "application/octet-stream"), filename=filename,
                        background=BackgroundTask(_remove, tmp))  # fmt: skip


def _remove(folder: Path) -> None:
    for p in folder.iterdir():
        p.unlink(missing_ok=True)
    folder.rmdir()
