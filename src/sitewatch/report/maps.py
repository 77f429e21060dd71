"""The site map: AOI, zones, scene footprints and detection footprints on lon/lat axes (offline, no tiles)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.ticker import MaxNLocator
from shapely import wkt
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from sitewatch.report.charts import CATEGORY_COLOURS, figure_png, new_figure
from sitewatch.report.model import SiteInfo
from sitewatch.types import Detection


def _outline(ax, geom: BaseGeometry, **kw) -> None:  # noqa: ANN001 - matplotlib Axes
    polys = getattr(geom, "geoms", [geom])
    for i, poly in enumerate(polys):
        if poly.is_empty or not hasattr(poly, "exterior"):
            continue
        x, y = poly.exterior.xy
        ax.plot(x, y, **(kw if i == 0 else {k: v for k, v in kw.items() if k != "label"}))


def site_map_png(
    site: SiteInfo,
    detections: Sequence[Detection],
    *,
    scene_footprint_wkt: str | None = None,
    title: str = "",
) -> bytes:
    """Draw the site (PNG bytes).

    Args:
        site: the site with its AOI and zones (WGS84 WKT).
        detections: detections whose ``footprint`` (WGS84 corners) is drawn, filled by category;
            ones without a footprint are skipped.
        scene_footprint_wkt: the scanned area of the pass (WGS84 WKT), drawn dashed.
        title: axes title.
    """
    fig = new_figure(6.5, 5.0)
    ax = fig.add_subplot()
    if site.aoi_wkt:
        _outline(ax, wkt.loads(site.aoi_wkt), color="black", lw=1.6, label="AOI")
    for i, (name, zone) in enumerate(sorted(site.zones.items())):
        geom = wkt.loads(zone)
        _outline(ax, geom, color="#555", lw=0.9, ls=":", label="zones" if i == 0 else None)
        c = geom.representative_point()
        ax.annotate(name, (c.x, c.y), fontsize=7, color="#333", ha="center")
    if scene_footprint_wkt:
        _outline(ax, wkt.loads(scene_footprint_wkt), color="#0a6", lw=1.0, ls="--", label="scene")
    seen: set[str] = set()
    for d in detections:
        if not d.footprint:
            continue
        poly = Polygon(d.footprint)
        x, y = poly.exterior.xy
        ax.fill(
            x,
            y,
            color=CATEGORY_COLOURS[d.category],
            alpha=0.8,
            lw=0.4,
            label=d.category if d.category not in seen else None,
        )
        seen.add(d.category)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    lat0 = sum(ax.get_ylim()) / 2.0
    ax.set_aspect(1.0 / max(math.cos(math.radians(lat0)), 1e-6))
    ax.ticklabel_format(useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)
    if title:
        ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return figure_png(fig)
