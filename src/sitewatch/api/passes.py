"""Routes of passes and detections: show, delete, detections as paged GeoJSON, detection chips."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter
from shapely.geometry import Polygon

from sitewatch.api._params import PathId, parse_bbox, parse_time
from sitewatch.api.cache import NOT_MODIFIED, pass_response
from sitewatch.api.context import ServerContext
from sitewatch.api.errors import BadParameterError, NotFoundError
from sitewatch.api.security import require_read, require_write
from sitewatch.api.views import detection_feature, pass_summary
from sitewatch.identify.hierarchy import label_detection
from sitewatch.types import CATEGORIES, Detection, Pass

router = APIRouter(prefix="/api", tags=["passes"])

GEOJSON = "application/geo+json"
#: Default features per detections page.
DEFAULT_PAGE = 500
#: How FastAPI encodes a route's ``dict[str, Any]`` answer (pydantic's JSON): cached summaries keep its bytes.
_SUMMARY = TypeAdapter(dict[str, Any])


def ctx_of(request: Request) -> ServerContext:
    return request.app.state.ctx


class DetectionFilter:
    """The query filters shared by the detections endpoints (built by :func:`detection_filter`)."""

    def __init__(
        self,
        bbox: str | None,
        category: str | None,
        type: str | None,  # noqa: A002 - API field name
        min_score: float,
        limit: int,
        offset: int,
    ) -> None:
        if category is not None and category not in CATEGORIES:
            raise BadParameterError("category", f"{category!r}: expected one of {', '.join(CATEGORIES)}")
        self.area: Polygon | None = parse_bbox(bbox)
        self.category, self.type, self.min_score = category, type, min_score
        self.limit, self.offset = limit, offset

    def keep(self, d: Detection) -> bool:
        if self.category is not None and d.category != self.category:
            return False
        if self.type is not None and (d.best_type is None or d.best_type.type_id != self.type):
            return False
        if d.score < self.min_score:
            return False
        return self.area is None or (d.footprint is not None and self.area.intersects(Polygon(d.footprint)))


async def detection_filter(
    bbox: Annotated[
        str | None, Query(description="W,S,E,N in WGS84 degrees: footprints intersecting it")
    ] = None,
    category: Annotated[str | None, Query(description=f"one of {', '.join(CATEGORIES)}")] = None,
    type: Annotated[str | None, Query(description="best type id, e.g. su-24")] = None,  # noqa: A002 - API field name
    min_score: Annotated[float, Query(ge=0.0, le=1.0, description="lowest detector score")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=10_000, description="features per page")] = DEFAULT_PAGE,
    offset: Annotated[int, Query(ge=0, description="features skipped")] = 0,
) -> DetectionFilter:
    """FastAPI dependency: the detections filters of a request (async: no thread for a cheap parse)."""
    return DetectionFilter(bbox, category, type, min_score, limit, offset)


def feature_page(
    request: Request,
    items: Sequence[tuple[Pass, Detection]],
    f: DetectionFilter,
    statuses: dict[int, str] | None = None,
) -> dict[str, Any]:
    """One page of ``items`` as a FeatureCollection with ``numberMatched``/``numberReturned`` and a ``next``
    link."""
    ctx = ctx_of(request)
    if f.limit > ctx.settings.max_page:
        raise BadParameterError("limit", f"at most {ctx.settings.max_page} features per page")
    page = items[f.offset : f.offset + f.limit]
    statuses = statuses or {}
    feats = [detection_feature(p, d, statuses.get(d.id or -1)) for p, d in page]
    nxt = None
    if f.offset + f.limit < len(items):
        nxt = str(request.url.include_query_params(offset=f.offset + f.limit, limit=f.limit))
        nxt = nxt[nxt.index(request.url.path) :]  # relative: right behind any proxy or host name
    return {
        "type": "FeatureCollection",
        "numberMatched": len(items),
        "numberReturned": len(feats),
        "next": nxt,
        "features": feats,
    }


@router.get("/passes/{pass_id}", dependencies=[Depends(require_read)], response_model=dict[str, Any],
            responses=NOT_MODIFIED)  # fmt: skip
async def show_pass(request: Request, pass_id: PathId) -> Response:
    """One pass (without its detections)."""
    ctx = ctx_of(request)
    return await pass_response(
        request,
        pass_id,
        "application/json",
        lambda: _SUMMARY.dump_json(pass_summary(ctx.store.get_pass(pass_id))),
    )


@router.delete("/passes/{pass_id}", status_code=204, dependencies=[Depends(require_write)])
def delete_pass(request: Request, pass_id: PathId) -> Response:
    """Delete a pass and its detections."""
    ctx = ctx_of(request)
    try:
        ctx.store.delete_pass(pass_id)
    finally:
        ctx.pass_responses.forget_pass(pass_id)
    return Response(status_code=204)


@router.get("/passes/{pass_id}/detections", dependencies=[Depends(require_read)], response_class=Response,
            responses={200: {"content": {GEOJSON: {}}}, **NOT_MODIFIED})  # fmt: skip
async def pass_detections(
    request: Request, pass_id: PathId, f: Annotated[DetectionFilter, Depends(detection_filter)]
) -> Response:
    """The detections of a pass as GeoJSON (WGS84 footprints; null geometry in pixel space), paged.

    Answered from the server's cache of encoded pages while the pass exists (see
    :mod:`sitewatch.api.cache`), with a strong ``ETag``: ``If-None-Match`` with it gives 304.
    """
    ctx = ctx_of(request)

    def make() -> bytes:
        p = ctx.store.get_pass(pass_id)
        return _encode(feature_page(request, [(p, d) for d in p.detections if f.keep(d)], f))

    return await pass_response(request, pass_id, GEOJSON, make)


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _in_time(passes: Iterable[Pass], start: datetime | None, end: datetime | None) -> list[Pass]:
    out = []
    for p in passes:
        if (start or end) and p.acquired is None:
            continue
        if start and p.acquired and p.acquired < start:
            continue
        if end and p.acquired and p.acquired > end:
            continue
        out.append(p)
    return out


@router.get("/sites/{name}/detections", dependencies=[Depends(require_read)])
def site_detections(
    request: Request,
    name: str,
    f: Annotated[DetectionFilter, Depends(detection_filter)],
    start: Annotated[str | None, Query(description="passes acquired at or after (ISO 8601, UTC)")] = None,
    end: Annotated[str | None, Query(description="passes acquired at or before (ISO 8601, UTC)")] = None,
) -> dict[str, Any]:
    """The detections of a site's passes (oldest pass first) as GeoJSON, filtered and paged.

    With ``bbox`` the area query runs in the store (a PostGIS spatial index on PostgreSQL).
    """
    ctx = ctx_of(request)
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if t0 and t1 and t0 > t1:
        raise BadParameterError("end", "is before start")
    site = ctx.site(name)
    passes = _in_time(ctx.passes(site), t0, t1)
    if f.area is not None:
        by_id = {p.id: p for p in passes}
        found = ctx.store.detections_in(f.area, site=site.name, category=f.category)
        items = [(by_id[pid], d) for pid, d in found if pid in by_id and f.keep(d)]
        order = {pid: i for i, pid in enumerate(by_id)}
        items.sort(key=lambda it: (order[it[0].id], it[1].id or 0))
    else:
        items = [(p, d) for p in passes for d in p.detections if f.keep(d)]
    return feature_page(request, items, f)


@router.get("/passes/{pass_id}/detections/{detection_id}/chip.png", dependencies=[Depends(require_read)],
            response_class=Response, responses={200: {"content": {"image/png": {}}}})  # fmt: skip
def detection_chip(
    request: Request, pass_id: PathId, detection_id: PathId, size: Annotated[int, Query(ge=64, le=1024)] = 256
) -> Response:
    """An image chip of one detection (its box drawn, scale bar, north arrow), PNG."""
    from sitewatch.imagery import open_scene
    from sitewatch.report.chips import ChipBox, chip_window, render_chip

    p = ctx_of(request).store.get_pass(pass_id)
    d = next((d for d in p.detections if d.id == detection_id), None)
    if d is None:
        raise NotFoundError(f"pass {pass_id} has no detection {detection_id}")
    with open_scene(p.scene_path, gsd_m=p.gsd_m, force=True) as scene:  # as stored
        png = render_chip(scene, chip_window([d.box]), [ChipBox(d.box, "observed", _label(d))], size_px=size)
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _label(d: Detection) -> str:
    label = label_detection(d)
    return label.text if label.identified else d.category
