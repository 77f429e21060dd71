"""Exports: every format re-opened with GDAL (pyogrio, and ``ogrinfo`` where installed) gives the
right CRS, geometry type, field types, spatial index, and known pixels at their known lon/lat."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from ci_support import require_tool
from sitewatch.errors import ReportError
from sitewatch.imagery import pixel_to_lonlat
from sitewatch.output import check_output, neutralise_cell
from sitewatch.report.exports import FORMATS, ExportFormat, export_passes, format_for, register_format
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox, Pass

UTM = "EPSG:32636"
#: 0.5 m pixels, top-left corner at (500000 E, 3920000 N) in UTM 36N (about 33.00 E, 35.42 N)
T = Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 3_920_000.0)
KML = "{http://www.opengis.net/kml/2.2}"


def _expected_lonlat(x: float, y: float) -> tuple[float, float]:
    """Pixel → WGS84 computed independently of sitewatch: affine, then PROJ."""
    e, n = T * (x, y)
    return Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(e, n)


def _det(cx: float, cy: float, category: str, *, cands: tuple[Candidate, ...] = (), m: Measurement | None = None, id: int) -> Detection:
    b = OrientedBox.make(cx, cy, 40, 30, 30)
    corners = b.corners()
    lons, lats = pixel_to_lonlat(T, corners[:, 0], corners[:, 1], crs=UTM)
    fp = tuple((float(lo), float(la)) for lo, la in zip(lons, lats, strict=True))
    return Detection(b, category, 0.9, fp, m, cands, id=id)


IL76 = Candidate("il-76md", "Il-76MD", "heavy transport", 0.23)
SU24 = Candidate("su-24", "Su-24", "strike", 0.7)


def _passes() -> list[Pass]:
    m = Measurement(46.6, 50.5, 0.8, 0.9, 120.0, 2.0, 0.5)
    common = {"footprint_wkt": box(35.93, 35.40, 35.96, 35.43).wkt, "aoi_coverage": 1.0, "gsd_m": 0.5, "model": "m 1", "crs": UTM, "transform": tuple(T)[:6]}
    p1 = Pass("base", "a.tif", datetime(2024, 1, 2, 8, 30, tzinfo=UTC), **common,
              detections=[_det(400, 300, "aircraft", cands=(IL76,), m=m, id=1), _det(900, 700, "small-vehicle", id=2)], id=1, simulated=True)  # fmt: skip
    p2 = Pass("base", "=HYPERLINK(\"http://x\")", datetime(2024, 2, 3, 9, 0, tzinfo=UTC), **common,
              detections=[_det(400, 300, "aircraft", cands=(IL76,), m=m, id=3), _det(1500, 300, "helicopter", cands=(SU24,), id=4)], id=2)  # fmt: skip
    # pixel space: no coverage, no georeference
    pix = Pass("base", "shot.png", None, None, None, 0.5, "m 1", detections=[Detection(OrientedBox(3, 4, 20, 10, 0), "ship", 0.5, id=5)], id=3)
    return [p1, p2, pix]


def _located_corners(passes: list[Pass]) -> dict[int, list[tuple[float, float]]]:
    return {d.id: [_expected_lonlat(x, y) for x, y in d.box.corners()] for p in passes for d in p.detections if d.footprint}


def _same_ring(got: shapely.Polygon, expected: list[tuple[float, float]], tol_deg: float) -> None:
    """Vertex by vertex (whatever the start and winding the format chose)."""
    ring = list(got.exterior.coords)[:-1]
    assert len(ring) == 4
    for ex in expected:
        d = min(max(abs(v[0] - ex[0]), abs(v[1] - ex[1])) for v in ring)
        assert d <= tol_deg, f"vertex {ex} is {d:.2e} deg from the nearest exported vertex"


@pytest.fixture(scope="module")
def passes() -> list[Pass]:
    return _passes()


def test_known_pixels_computed_independently(passes: list[Pass]) -> None:
    """The footprints fed to the exports agree with PROJ within 1e-9 deg (the reference is sound)."""
    for did, corners in _located_corners(passes).items():
        d = next(d for p in passes for d in p.detections if d.id == did)
        assert np.allclose(np.array(d.footprint), np.array(corners), atol=1e-9)


FIELD_TYPES = {
    "geojson": {"acquired": "datetime64", "score": "float64", "pass_id": "int", "simulated": "bool", "length_m": "float64", "category": "object"},
    "flatgeobuf": {"acquired": "datetime64", "score": "float64", "pass_id": "int64", "simulated": "bool", "length_m": "float64", "category": "object"},
    "gpkg": {"acquired": "datetime64", "score": "float64", "pass_id": "int64", "simulated": "bool", "length_m": "float64", "category": "object"},
}


@pytest.mark.parametrize("fmt", ["geojson", "flatgeobuf", "gpkg"])
def test_ogr_exports_crs_types_index_and_positions(tmp_path: Path, passes: list[Pass], fmt: str) -> None:
    out = export_passes(passes, None, fmt, tmp_path / f"x{FORMATS[fmt].suffix}")
    info = pyogrio.read_info(out, layer="detections" if fmt == "gpkg" else None)
    assert info["crs"] == "EPSG:4326"
    assert info["geometry_type"] == "Polygon"
    assert info["features"] == (4 if fmt == "flatgeobuf" else 5)  # FlatGeobuf's R-tree cannot hold null geometries
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    for field, kind in FIELD_TYPES[fmt].items():
        assert types[field].startswith(kind), f"{field}: {types[field]}"
    if fmt in ("flatgeobuf", "gpkg"):
        assert info["capabilities"]["fast_spatial_filter"] is True
    back = gpd.read_file(out, layer="detections" if fmt == "gpkg" else None)
    assert back.crs.to_epsg() == 4326
    tol = 6e-8 if fmt == "geojson" else 1e-12  # GeoJSON: 7 decimals
    for did, corners in _located_corners(passes).items():
        _same_ring(back[back["detection_id"] == did].geometry.iloc[0], corners, tol)
    row = back[back["detection_id"] == 3].iloc[0]
    assert row["best_type"] == "il-76md" and row["length_m"] == 46.6 and row["heading_deg"] == 120.0
    assert row["heading_px_deg"] == 30.0 and row["change"] == "remained"
    assert back[back["detection_id"] == 4].iloc[0]["change"] == "arrived"
    assert pd.Timestamp(row["acquired"]) == pd.Timestamp("2024-02-03T09:00:00Z")


def test_geojson_is_rfc7946(tmp_path: Path, passes: list[Pass]) -> None:
    out = export_passes(passes, None, "geojson", tmp_path / "x.geojson")
    doc = json.loads(out.read_text())
    assert "crs" not in doc and "name" not in doc and set(doc) <= {"type", "features", "bbox", "xy_coordinate_resolution"}
    text = out.read_text()
    decimals = [len(m) for m in re.findall(r"-?\d+\.(\d+)", json.dumps([f["geometry"] for f in doc["features"]]))]
    assert decimals and max(decimals) <= 7
    assert "geometry" in text and doc["features"][-1]["geometry"] is None  # the pixel-space ship
    ring = shapely.geometry.shape(doc["features"][0]["geometry"]).exterior
    assert ring.is_ccw  # RFC 7946 §3.1.6: exterior rings counterclockwise


def test_gpkg_has_aoi_zones_and_passes(tmp_path: Path, passes: list[Pass]) -> None:
    from sitewatch.sites import get_site

    site = get_site("hmeimim")
    out = export_passes(passes, site, "gpkg", tmp_path / "x.gpkg")
    layers = {name: geom for name, geom in pyogrio.list_layers(out)}
    assert set(layers) == {"detections", "passes", "aoi", "zones"}
    aoi = gpd.read_file(out, layer="aoi")
    assert aoi.crs.to_epsg() == 4326 and aoi.geometry.iloc[0].equals_exact(shapely.MultiPolygon([site.aoi]), 1e-9)
    zones = gpd.read_file(out, layer="zones")
    assert sorted(zones["zone"]) == sorted(site.zones)
    ps = gpd.read_file(out, layer="passes")
    assert list(ps["pass_id"]) == [1, 2, 3] and list(ps["detections"]) == [2, 2, 1]
    with sqlite3.connect(out) as db:  # the R-tree of every layer with geometry
        rtree = {r[0] for r in db.execute("SELECT table_name FROM gpkg_extensions WHERE extension_name='gpkg_rtree_index'")}
    assert rtree == {"detections", "passes", "aoi", "zones"}


def test_geoparquet_1_1_with_bbox_and_timestamps(tmp_path: Path, passes: list[Pass]) -> None:
    out = export_passes(passes, None, "geoparquet", tmp_path / "x.parquet")
    table = pq.read_table(out)
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["columns"]["geometry"]["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert str(table.schema.field("acquired").type) == "timestamp[ms, tz=UTC]"
    assert str(table.schema.field("bbox").type).startswith("struct<xmin: double")
    back = gpd.read_parquet(out)
    assert back.crs.to_epsg() == 4326 and len(back) == 5
    bbox = table.column("bbox").to_pylist()[0]
    g = back.geometry.iloc[0]
    assert (bbox["xmin"], bbox["ymin"], bbox["xmax"], bbox["ymax"]) == pytest.approx(g.bounds)
    for did, corners in _located_corners(passes).items():
        _same_ring(back[back["detection_id"] == did].geometry.iloc[0], corners, 1e-12)
    if "Parquet" in pyogrio.list_drivers():
        info = pyogrio.read_info(out)
        assert info["crs"] == "EPSG:4326" and info["features"] == 5


def test_kml_timestamps_styles_and_names(tmp_path: Path, passes: list[Pass]) -> None:
    out = export_passes(passes, None, "kml", tmp_path / "x.kml")
    root = ET.parse(out).getroot()
    marks = root.findall(f".//{KML}Placemark")
    assert len(marks) == 4  # the pixel-space ship has no ground position
    for pm in marks:
        assert len(pm.findall(f"{KML}TimeStamp/{KML}when")) == 1
        assert pm.find(f"{KML}Style/{KML}PolyStyle/{KML}color") is not None
    names = [pm.findtext(f"{KML}name") for pm in marks]
    assert "Il-76MD 0.23 · aircraft" in names and "Su-24 0.70 · helicopter" in names and "small-vehicle 0.90" in names
    whens = sorted(pm.findtext(f"{KML}TimeStamp/{KML}when") for pm in marks)
    assert whens == ["2024-01-02T08:30:00Z"] * 2 + ["2024-02-03T09:00:00Z"] * 2
    arrived = next(pm for pm in marks if pm.findtext(f"{KML}name").startswith("Su-24"))
    assert arrived.findtext(f"{KML}Style/{KML}LineStyle/{KML}color") == "ff2ca02c"  # green pen: arrived (KML is aabbggrr)
    back = gpd.read_file(out)
    assert back.crs.to_epsg() == 4326 and len(back) == 4
    for did, corners in _located_corners(passes).items():
        _same_ring(back[back["detection_id"] == did].geometry.iloc[0], corners, 1e-9)


def test_csv_cells_are_spreadsheet_safe(tmp_path: Path, passes: list[Pass]) -> None:
    out = export_passes(passes, None, "csv", tmp_path / "x.csv")
    df = pd.read_csv(out)
    assert len(df) == 5
    assert set(df["scene"]) == {"a.tif", "'=HYPERLINK(\"http://x\")", "shot.png"}
    assert df["acquired"].iloc[0] == "2024-01-02T08:30:00Z"
    located = df[df["wkt"].notna()]
    for did, corners in _located_corners(passes).items():
        _same_ring(shapely.from_wkt(located[located["detection_id"] == did]["wkt"].iloc[0]), corners, 6e-8)
    assert [neutralise_cell(s) for s in ("=1+1", "+cmd|' /C calc'!A0", "-2", "@SUM(A1)", "\tx", "\rx", "ok", "")] == [
        "'=1+1", "'+cmd|' /C calc'!A0", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "ok", ""
    ]  # fmt: skip


@pytest.mark.parametrize("fmt", ["geojson", "flatgeobuf", "gpkg", "kml", "geoparquet"])
def test_ogrinfo_opens_exports(tmp_path: Path, passes: list[Pass], fmt: str) -> None:
    require_tool("ogrinfo", "gdal-bin")  # .ci/run installs it: missing in CI fails
    formats = subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True, check=True).stdout
    if fmt == "geoparquet" and "Parquet" not in formats:
        pytest.skip("this ogrinfo has no Parquet driver (Debian 12's GDAL 3.6 is built without Arrow)")
    out = export_passes(passes, None, fmt, tmp_path / f"x{FORMATS[fmt].suffix}")
    r = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Warning" not in r.stderr, r.stderr
    # KML has no layer geometry type: GDAL reports "Unknown (any)" for every KML layer
    assert re.search(r"Geometry: (3D )?Polygon" if fmt != "kml" else r"Geometry: ", r.stdout), r.stdout
    counts = [int(n) for n in re.findall(r"Feature Count: (\d+)", r.stdout)]
    assert counts[0] == (4 if fmt in ("flatgeobuf", "kml") else 5)
    assert 'ID["EPSG",4326]' in r.stdout
    if fmt in ("gpkg", "flatgeobuf", "geojson"):
        assert re.search(r"acquired: DateTime", r.stdout), r.stdout


def test_format_from_suffix_and_mismatch_refused(tmp_path: Path, passes: list[Pass]) -> None:
    assert format_for("a.GPKG").name == "gpkg" and format_for("a.json").name == "geojson" and format_for("a.fgb").name == "flatgeobuf"
    for fmt, name in (("flatgeobuf", "det.flatgeobuf"), ("kml", "det.txt"), ("geojson", "det.kml")):
        with pytest.raises(ReportError, match="does not match --format"):
            export_passes(passes, None, fmt, tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ReportError, match="cannot tell the export format"):
        export_passes(passes, None, None, tmp_path / "det.txt")
    assert export_passes(passes, None, None, tmp_path / "det.fgb").is_file()
    assert os.listdir(tmp_path) == ["det.fgb"]  # no temporary files left behind


def test_existing_targets(tmp_path: Path, passes: list[Pass]) -> None:
    out = tmp_path / "x.geojson"
    out.write_text("keep")
    with pytest.raises(ReportError, match="exists; use --overwrite"):
        export_passes(passes, None, "geojson", out)
    assert out.read_text() == "keep"
    export_passes(passes, None, "geojson", out, overwrite=True)
    assert json.loads(out.read_text())["type"] == "FeatureCollection"
    (tmp_path / "d.geojson").mkdir()
    with pytest.raises(ReportError, match="is a folder"):
        export_passes(passes, None, "geojson", tmp_path / "d.geojson", overwrite=True)
    os.mkfifo(tmp_path / "p.csv")
    with pytest.raises(ReportError, match="is a named pipe"):
        export_passes(passes, None, "csv", tmp_path / "p.csv", overwrite=True)
    assert (tmp_path / "p.csv").is_fifo()
    if Path("/dev/full").exists():
        with pytest.raises(ReportError, match="is a device"):
            check_output("/dev/full", overwrite=True)
    with pytest.raises(ReportError, match="does not exist"):
        export_passes(passes, None, "geojson", tmp_path / "missing" / "x.geojson")
    assert sorted(os.listdir(tmp_path)) == ["d.geojson", "p.csv", "x.geojson"]


def test_failed_write_leaves_nothing(tmp_path: Path, passes: list[Pass]) -> None:
    def broken(job, path: Path) -> None:
        path.write_text("half")
        raise OSError(28, "No space left on device")

    register_format(ExportFormat("broken", ".brk", broken))
    try:
        with pytest.raises(ReportError, match="No space left on device"):
            export_passes(passes, None, "broken", tmp_path / "x.brk")
    finally:
        del FORMATS["broken"]
    assert os.listdir(tmp_path) == []


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ReportError, match="unknown export format 'shp'"):
        format_for("x.shp", "shp")
    with pytest.raises(ValueError, match="already registered"):
        register_format(ExportFormat("geojson", ".json", FORMATS["geojson"].write))


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit status, stdout, stderr with line wrapping undone)."""
    from sitewatch.cli.main import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sitewatch.store import open_store

    url = f"sqlite:///{tmp_path / 'sw.db'}"
    with open_store(url) as store:
        for p in _passes():
            p.id = None
            for i, d in enumerate(p.detections):
                p.detections[i] = Detection(d.box, d.category, d.score, d.footprint, d.measurement, d.candidates)
            store.save_pass(p)
    code, _, err = _cli(capsys, "export", "base", "--store", url, "--format", "flatgeobuf", "-o", str(tmp_path / "det.flatgeobuf"))
    assert code == 2 and err.endswith("does not match --format flatgeobuf; use .fgb"), err
    assert not (tmp_path / "det.flatgeobuf").exists()
    code, _, err = _cli(capsys, "export", "base", "--store", url, "-o", str(tmp_path / "det.gpkg"))
    assert code == 0 and "wrote 5 detections of 3 pass(es)" in err, err
    assert pyogrio.read_info(tmp_path / "det.gpkg", layer="detections")["features"] == 5
    code, _, err = _cli(capsys, "export", "base", "--store", url, "-o", str(tmp_path / "det.gpkg"))
    assert code == 2 and err == f"error: {tmp_path / 'det.gpkg'}: exists; use --overwrite to replace it"
    code, _, err = _cli(capsys, "export", "base", "--store", url, "-o", str(tmp_path / "det.kml"))
    assert code == 0 and "wrote 4 detections" in err and "1 pixel-space detection(s) left out" in err, err
    code, out, _ = _cli(capsys, "export", "--help")
    assert "env var: SITEWATCH_STORE_URL" in out and "--overwrite" in out
