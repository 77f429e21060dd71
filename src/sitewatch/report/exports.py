"""Export the detections of passes as GIS files: GeoJSON, GeoParquet, KML, CSV, FlatGeobuf.

One row per detection: WGS84 footprint polygon (null for pixel-space passes), pass and site
fields, category, score, best type and role, metric size (metres) and heading (degrees clockwise
from north), and the box in the scene's pixel frame. Formats are a registry (:data:`FORMATS`);
writers use geopandas/pyogrio (GDAL), GeoParquet goes through pyarrow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from sitewatch.errors import ReportError
from sitewatch.identify.hierarchy import label_detection
from sitewatch.types import Pass

log = logging.getLogger(__name__)

WGS84 = "EPSG:4326"


@dataclass(frozen=True)
class ExportFormat:
    """A registered export format: name, file suffix and writer ``(frame, path) -> None``."""

    name: str
    suffix: str
    write: Callable[[gpd.GeoDataFrame, Path], None]


FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat, *, replace: bool = False) -> None:
    """Add an export format.

    Raises:
        ValueError: the name is taken and ``replace`` is False.
    """
    if fmt.name in FORMATS and not replace:
        raise ValueError(f"export format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt


def _ogr_writer(driver: str, **layer_options: str) -> Callable[[gpd.GeoDataFrame, Path], None]:
    def write(frame: gpd.GeoDataFrame, path: Path) -> None:
        pyogrio.write_dataframe(frame, path, driver=driver, layer_options=layer_options or None)

    return write


def _write_parquet(frame: gpd.GeoDataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _write_csv(frame: gpd.GeoDataFrame, path: Path) -> None:
    """Plain CSV: geometry as WKT plus centre lon/lat columns (no GDAL needed to read it)."""
    df = pd.DataFrame(frame.drop(columns="geometry"))
    df["wkt"] = [g.wkt if g is not None else "" for g in frame.geometry]
    df.to_csv(path, index=False)


def _kml_driver() -> str | None:
    drivers = pyogrio.list_drivers(write=True)
    return next((d for d in ("LIBKML", "KML") if d in drivers), None)


def _write_kml(frame: gpd.GeoDataFrame, path: Path) -> None:
    driver = _kml_driver()
    if driver is None:
        raise ReportError(f"{path}: no KML driver in this GDAL build (pyogrio.list_drivers() lists neither LIBKML nor KML)")
    located = frame[frame.geometry.notna()]
    if len(located) < len(frame):
        log.warning("%d pixel-space detections left out of KML (no ground position)", len(frame) - len(located))
    out = located.copy()
    out["Name"] = [str(t) if t else str(c) for c, t in zip(out["category"], out["label"], strict=True)]
    pyogrio.write_dataframe(out, path, driver=driver)


for _fmt in (
    ExportFormat("geojson", ".geojson", _ogr_writer("GeoJSON")),
    ExportFormat("geoparquet", ".parquet", _write_parquet),
    ExportFormat("kml", ".kml", _write_kml),
    ExportFormat("csv", ".csv", _write_csv),
    # pixel-space detections have no geometry, which FlatGeobuf's spatial index cannot hold
    ExportFormat("flatgeobuf", ".fgb", _ogr_writer("FlatGeobuf", SPATIAL_INDEX="NO")),
):
    register_format(_fmt)


#: Attribute columns of an export, in order (then ``lon``/``lat`` of the footprint centre, and geometry).
COLUMNS = [
    "site", "pass_id", "acquired", "scene", "simulated", "model", "detection_id", "category", "score",
    "best_type", "type_name", "role", "type_probability", "label", "label_level", "label_probability", "length_m", "width_m", "heading_deg",
    "cx_px", "cy_px", "length_px", "width_px", "heading_px_deg", "candidates",
]  # fmt: skip


def detections_frame(passes: Sequence[Pass]) -> gpd.GeoDataFrame:
    """All detections of ``passes`` as a WGS84 GeoDataFrame, one row per detection."""
    rows: list[dict[str, Any]] = []
    geoms = []
    for p in passes:
        for d in p.detections:
            best, m = d.best_type, d.measurement
            label = label_detection(d) if d.candidates else None
            rows.append(
                {
                    "site": p.site,
                    "pass_id": p.id,
                    "acquired": p.acquired.isoformat() if p.acquired else None,
                    "scene": p.scene_path,
                    "simulated": bool(p.simulated),
                    "model": p.model,
                    "detection_id": d.id,
                    "category": d.category,
                    "score": round(float(d.score), 4),
                    "best_type": best.type_id if best else None,
                    "type_name": best.name if best else None,
                    "role": best.role if best else None,
                    "type_probability": round(best.probability, 4) if best else None,
                    "label": label.text if label else None,
                    "label_level": label.level if label else None,
                    "label_probability": round(label.probability, 4) if label else None,
                    "length_m": m.length_m if m else None,
                    "width_m": m.width_m if m else None,
                    "heading_deg": m.heading_deg if m else None,
                    "cx_px": d.box.cx,
                    "cy_px": d.box.cy,
                    "length_px": d.box.length,
                    "width_px": d.box.width,
                    "heading_px_deg": d.box.heading_deg,
                    "candidates": json.dumps([c.to_dict() for c in d.candidates]),
                }
            )
            geoms.append(shapely.Polygon(d.footprint) if d.footprint else None)
    frame = gpd.GeoDataFrame(pd.DataFrame(rows, columns=COLUMNS), geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)
    # planar centroid of a few-metre polygon: exact enough in lon/lat (sub-millimetre)
    centroids = shapely.centroid(frame.geometry.values)
    frame["lon"] = shapely.get_x(centroids)
    frame["lat"] = shapely.get_y(centroids)
    return frame


def export_passes(passes: Sequence[Pass], site: Any, fmt: str, out_path: str | Path) -> Path:
    """Write the detections of ``passes`` to ``out_path`` in format ``fmt``.

    Args:
        passes: the passes (with detections) to export.
        site: the site (for messages; its name is also in every row), or None.
        fmt: a name in :data:`FORMATS` (geojson, geoparquet, kml, csv, flatgeobuf).
        out_path: file to write (replaced if it exists).

    Returns:
        The path written.

    Raises:
        ReportError: unknown format, or the file cannot be written.
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown export format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    path = Path(out_path)
    if not path.parent.is_dir():
        raise ReportError(f"{path}: folder {path.parent} does not exist")
    frame = detections_frame(passes)
    if any(p.simulated for p in passes):
        log.info("exporting SIMULATED passes (column 'simulated' is true)")
    try:
        if path.exists():
            path.unlink()
        FORMATS[fmt].write(frame, path)
    except ReportError:
        raise
    except (OSError, RuntimeError, ValueError, pyogrio.errors.DataSourceError) as e:
        raise ReportError(f"{path}: cannot write {fmt}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    name = getattr(site, "name", site)
    log.info("exported %d detections of %d passes of %s to %s", len(frame), len(passes), name, path)
    return path
