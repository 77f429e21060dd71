"""Routes of sites and their claims: list, show, add; claims list and add (a text report)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from shapely.geometry import box, shape

from sitewatch.api.context import ServerContext
from sitewatch.api.errors import BadParameterError, ConflictError
from sitewatch.api.security import require_read, require_write
from sitewatch.api.views import pass_summary, site_summary
from sitewatch.errors import SiteError

router = APIRouter(prefix="/api", tags=["sites"])


def ctx_of(request: Request) -> ServerContext:
    return request.app.state.ctx


class SiteIn(BaseModel):
    """A site to add to the watchlist. Give ``bbox`` (W,S,E,N degrees) or ``aoi`` (GeoJSON geometry,
    WGS84)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64, examples=["al-udeid"])
    kind: str = Field(examples=["airbase"])
    title: str | None = None
    country: str = Field(default="", max_length=2)
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4)
    aoi: dict[str, Any] | None = None
    zones: dict[str, dict[str, Any]] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    operators: list[str] = Field(default_factory=list)
    notes: str = ""
    sources: list[str] = Field(default_factory=list)
    replace: bool = False


class ReportIn(BaseModel):
    """An English text report (news item, statement) whose claims about the site are stored."""

    text: str = Field(min_length=1, max_length=200_000)
    source: str = Field(min_length=1, max_length=200)
    published: datetime | None = None
    reliability: Literal["A", "B", "C", "D", "E", "F"] | None = None
    title: str | None = None
    url: str | None = None


def _geometry(obj: dict[str, Any], field: str) -> Any:
    try:
        return shape(obj.get("geometry", obj) if obj.get("type") == "Feature" else obj)
    except Exception as e:  # noqa: BLE001 - shapely raises several kinds on bad GeoJSON
        raise BadParameterError(field, f"not a GeoJSON geometry ({e})") from None


@router.get("/sites", dependencies=[Depends(require_read)])
def list_sites(request: Request, stored: bool = False) -> list[dict[str, Any]]:
    """Watched sites (the watchlist plus sites known only from the store) with their pass counts.

    ``stored=true`` lists only sites that have passes.
    """
    from sitewatch.sites import list_sites as watchlist

    ctx = ctx_of(request)
    with_passes = {name: len(ctx.store.list_passes(name)) for name in ctx.store.sites()}
    out = [site_summary(s, with_passes.get(s.name, 0)) for s in watchlist(ctx.settings.home)]
    listed = {s["name"] for s in out}
    out += [site_summary(ctx.site(n), k) for n, k in with_passes.items() if n not in listed]
    return [s for s in out if s["passes"]] if stored else out


@router.get("/sites/{name}", dependencies=[Depends(require_read)])
def show_site(request: Request, name: str) -> dict[str, Any]:
    """One site: summary, AOI and zones (GeoJSON), priors, notes, and its passes oldest first."""
    ctx = ctx_of(request)
    site = ctx.site(name)
    passes = ctx.passes(site)
    geo = site.to_geojson() if hasattr(site, "to_geojson") else None
    return {
        **site_summary(site, len(passes)),
        "priors": site.priors,
        "notes": site.notes,
        "sources": site.sources,
        "geojson": geo,
        "pass_list": [pass_summary(p) for p in passes],
    }


@router.post("/sites", status_code=201, dependencies=[Depends(require_write)])
def add_site(request: Request, body: SiteIn) -> dict[str, Any]:
    """Add a site to the user watchlist (``$SITEWATCH_HOME/sites.geojson``)."""
    from sitewatch.sites import Site
    from sitewatch.sites import add_site as add

    ctx = ctx_of(request)
    if (body.bbox is None) == (body.aoi is None):
        raise BadParameterError("aoi", "give exactly one of bbox [W,S,E,N] or aoi (GeoJSON geometry)")
    if body.bbox is not None:
        w, s, e, n = body.bbox
        if not (w < e and s < n):
            raise BadParameterError("bbox", "expected W < E and S < N")
        aoi = box(w, s, e, n)
    else:
        aoi = _geometry(body.aoi or {}, "aoi")
    zones = {z: _geometry(g, f"zones.{z}") for z, g in body.zones.items()}
    try:
        site = Site(name=body.name, title=body.title or body.name, kind=body.kind,
                    country=body.country.upper(), aoi=aoi, aliases=body.aliases, zones=zones,
                    priors={"operators": body.operators} if body.operators else {}, notes=body.notes,
                    sources=body.sources)  # fmt: skip
    except SiteError as e:
        raise BadParameterError("site", str(e)) from None
    try:
        add(site, replace=body.replace, home=ctx.settings.home)
    except SiteError as e:
        raise ConflictError(str(e)) from None
    return site_summary(site, 0)


@router.get("/sites/{name}/passes", dependencies=[Depends(require_read)])
def site_passes(request: Request, name: str) -> list[dict[str, Any]]:
    """The passes of a site, oldest first (without detections)."""
    ctx = ctx_of(request)
    return [pass_summary(p) for p in ctx.passes(ctx.site(name))]


@router.get("/sites/{name}/claims", dependencies=[Depends(require_read)])
def list_claims(request: Request, name: str) -> list[dict[str, Any]]:
    """The stored claims about a site (from ingested text reports)."""
    ctx = ctx_of(request)
    return ctx.store.list_claims(ctx.site(name).name)


@router.post("/sites/{name}/claims", status_code=201, dependencies=[Depends(require_write)])
def add_report(request: Request, name: str, body: ReportIn) -> dict[str, Any]:
    """Store an English text report and the claims extracted from it about this site."""
    from sitewatch.assess.claims import check_english, extract_claims

    ctx = ctx_of(request)
    site = ctx.site(name)
    check_english(body.text, f"report from {body.source}")
    claims = extract_claims(body.text, source=body.source, published=body.published,
                            reliability=body.reliability, url=body.url, sites=[site])  # fmt: skip
    doc_id = ctx.store.add_document(body.source, body.text, body.published, body.url, body.title)
    for c in claims:
        c.document_id = doc_id
    ctx.store.save_claims(doc_id, [c.to_dict() for c in claims])
    stored = [c for c in ctx.store.list_claims() if c.get("document_id") == doc_id]
    return {"document_id": doc_id, "claims": stored}
