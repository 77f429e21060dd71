"""Exports: every format re-read with geopandas/pyogrio gives the same detections and positions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from sitewatch.errors import ReportError
from sitewatch.report.exports import FORMATS, ExportFormat, export_passes, register_format
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox, Pass


def _passes() -> list[Pass]:
    def det(i: int, lon: float) -> Detection:
        fp = ((lon, 35.4), (lon + 1e-4, 35.4), (lon + 1e-4, 35.4001), (lon, 35.4001))
        cands = (Candidate("su-24", "Su-24", "strike", 0.7),) if i == 0 else ()
        m = Measurement(22.5, 17.0, 0.5, 0.5, 45.0, 2.0, 0.5) if i == 0 else None
        return Detection(OrientedBox(10.0 * i, 5.0, 40, 30, 45), "aircraft" if i == 0 else "small-vehicle", 0.9, fp, m, cands, id=i + 1)

    geo = Pass("base", "a.tif", datetime(2024, 1, 2, tzinfo=UTC), None, 1.0, 0.5, "m 1", crs="EPSG:32636", transform=(0.5, 0, 0, 0, -0.5, 0),
               detections=[det(0, 35.94), det(1, 35.95)], id=1, simulated=True)  # fmt: skip
    pix = Pass("base", "shot.png", None, None, None, 0.5, "m 1", detections=[Detection(OrientedBox(3, 4, 20, 10, 0), "ship", 0.5, id=3)], id=2)
    return [geo, pix]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_round_trip(tmp_path: Path, fmt: str) -> None:
    out = export_passes(_passes(), None, fmt, tmp_path / f"x{FORMATS[fmt].suffix}")
    if fmt == "csv":
        df = pd.read_csv(out)
        geoms = [shapely.from_wkt(w) if isinstance(w, str) else None for w in df["wkt"]]
        back = gpd.GeoDataFrame(df, geometry=geoms, crs="EPSG:4326")
    elif fmt == "geoparquet":
        back = gpd.read_parquet(out)
    else:
        back = gpd.read_file(out)
    expected = 2 if fmt == "kml" else 3  # KML holds only detections with a ground position
    assert len(back) == expected
    assert back.crs.to_epsg() == 4326
    located = back[back.geometry.notna() & ~back.geometry.is_empty]
    assert len(located) == 2
    cx = sorted(round(g.centroid.x, 5) for g in located.geometry)
    assert cx == [35.94005, 35.95005]
    if fmt != "kml":  # KML keeps only a few fields
        row = back[back["category"] == "aircraft"].iloc[0]
        assert row["best_type"] == "su-24" and float(row["length_m"]) == 22.5 and str(row["simulated"]).lower() in ("true", "1")
        cands = row["candidates"]  # GDAL's GeoJSON reader parses JSON-looking strings itself
        assert (json.loads(cands) if isinstance(cands, str) else list(cands))[0]["type_id"] == "su-24"
        assert sorted(back["category"]) == ["aircraft", "ship", "small-vehicle"]


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="unknown export format 'shp'"):
        export_passes(_passes(), None, "shp", tmp_path / "x.shp")
    with pytest.raises(ReportError, match="does not exist"):
        export_passes(_passes(), None, "geojson", tmp_path / "missing" / "x.geojson")
    with pytest.raises(ValueError, match="already registered"):
        register_format(ExportFormat("geojson", ".json", FORMATS["geojson"].write))
