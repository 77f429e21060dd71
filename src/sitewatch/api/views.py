"""JSON shapes of sites, passes and detections as the API returns them."""

from __future__ import annotations

from typing import Any

import shapely

from sitewatch.api.context import StoredSite
from sitewatch.store.features import detection_to_feature, pass_properties
from sitewatch.types import Detection, Pass


def site_summary(site: Any, n_passes: int | None = None) -> dict[str, Any]:
    """Name, title, kind, country, centre (lat, lon degrees), AOI area (km²), zones, pass count."""
    from sitewatch.sites.site import area_km2

    empty = site.aoi.is_empty or site.aoi.area == 0
    center = None
    if not empty:
        lon, lat = site.aoi.centroid.coords[0]
        center = [round(lat, 6), round(lon, 6)]
    return {
        "name": site.name,
        "title": site.title,
        "kind": site.kind,
        "country": site.country,
        "aliases": list(site.aliases),
        "center": center,
        "bounds": None if empty else [round(v, 6) for v in site.aoi.bounds],
        "aoi_km2": None if empty else round(area_km2(site.aoi), 3),
        "zones": list(site.zones),
        "on_watchlist": not isinstance(site, StoredSite),
        "passes": n_passes,
    }


def pass_summary(p: Pass) -> dict[str, Any]:
    """The pass fields (no detections) with its detection count and counts per category."""
    props = pass_properties(p)
    size = (p.metadata or {}).get("scene_size_px")
    return {
        **props,
        "georeferenced": p.crs is not None and p.transform is not None,
        "bounds_wgs84": None
        if not p.footprint_wkt
        else [round(v, 7) for v in shapely.from_wkt(p.footprint_wkt).bounds],
        "scene_size_px": size,
        "detections": len(p.detections),
        "counts": {k: v for k, v in p.counts().items() if v},
    }


def detection_feature(p: Pass, d: Detection, status: str | None = None) -> dict[str, Any]:
    """A detection as a GeoJSON feature (WGS84 footprint, or null in pixel space) with its box
    corners in scene pixels (``pixel_polygon``, x right, y down) and its change status if known."""
    feature = detection_to_feature(
        d, pass_id=p.id, site=p.site, acquired=p.acquired.isoformat() if p.acquired else None
    )
    props = feature["properties"]
    props["pixel_polygon"] = d.box.corner_list()
    if status is not None:
        props["status"] = status
    return feature
