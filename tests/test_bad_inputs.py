"""Bad input through the CLI: exit status 2, ONE stderr line naming the thing and the problem, no traceback,
and the store's rows unchanged. One table of cases; every file is made tiny in tmp_path."""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint

import sitewatch.pipeline
from _rasters import write_raster
from sitewatch.cli.main import main
from sitewatch.sites import Site
from sitewatch.sites.watchlist import add_site
from sitewatch.store import open_store
from test_scan import UTM, UTM_T, FakeDetector, _aoi_px, write_geotiff
from test_store import _pass

AOI = _aoi_px(UTM_T, UTM, 100, 100, 500, 400)
TABLES = ("passes", "detections", "documents", "claims")


@dataclass
class Env:
    """What the cases use: a folder, a good scene of the test site, a store holding one pass and one document."""

    tmp: Path
    good: Path
    url: str

    def file(self, name: str, data: bytes | str = b"") -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def raster(self, name: str, data: np.ndarray, **kw) -> Path:  # noqa: ANN003
        return write_raster(self.tmp / name, data, **kw)

    def rgb(self, rows: int = 64, cols: int = 64, dtype: str = "uint8", bands: int = 3) -> np.ndarray:
        return np.random.default_rng(0).integers(1, 200, (bands, rows, cols)).astype(dtype)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    add_site(Site(name="testbase", title="Test base", kind="airbase", country="", aoi=AOI))
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: FakeDetector([]))
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    with open_store(url) as store:
        store.save_pass(_pass("/data/a.tif", site="testbase"))
        store.add_document("wire", "Two Il-76 transport aircraft left the airbase.")
    return Env(tmp_path, write_geotiff(tmp_path / "good.tif", 800, 600, UTM, UTM_T), url)


def _rows(url: str) -> dict[str, int]:
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608 - fixed names
    finally:
        con.close()


def _png_declaring(w: int, h: int) -> bytes:
    """A small PNG whose header declares ``w`` x ``h`` px (the pixel data is one short row)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


def _nested(depth: int) -> str:
    return '{"type": "Feature", "geometry": ' + "[" * depth + "]" * depth + "}"


def _local_cs(e: Env) -> Path:
    wkt = 'LOCAL_CS["engineering grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    return e.raster("local.tif", e.rgb(), crs=wkt, transform=Affine(0.5, 0, 0, 0, -0.5, 100))


def _collinear_gcps(e: Env) -> Path:
    gcps = [GroundControlPoint(row=r, col=c, x=35.94 + 1e-5 * c, y=35.40, z=0) for r, c in ((0, 0), (10, 10), (20, 20))]
    return e.raster("gcps.tif", e.rgb(), gcps=(gcps, "EPSG:4326"))


def _zero_pixel(e: Env) -> Path:
    """A STAC item whose proj:transform has zero pixel size, on a plain PNG asset."""
    e.raster("zeroasset.png", e.rgb(), driver="PNG")
    item = {**STAC_OK, "properties": {**STAC_OK["properties"], "proj:epsg": 32636, "proj:transform": [0, 0, 767000, 0, 0, 3922000]},
            "assets": {"visual": {"href": "zeroasset.png", "type": "image/png", "roles": ["visual"]}}}  # fmt: skip
    return _stac(e, item)


def _stac(e: Env, item: dict | str) -> Path:
    return e.file("item.json", item if isinstance(item, str) else json.dumps(item))


STAC_OK = {"type": "Feature", "stac_version": "1.0.0", "id": "x", "geometry": None, "properties": {"datetime": "2024-01-01T00:00:00Z"},
           "links": [], "assets": {"visual": {"href": "missing.tif", "type": "image/tiff; application=geotiff", "roles": ["visual"]}}}  # fmt: skip


def _sparse_tiff(e: Env, side: int) -> Path:
    p = e.tmp / "sparse.tif"
    with rasterio.open(p, "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8", tiled=True,
                       sparse_ok=True, compress="deflate", crs=UTM, transform=UTM_T) as ds:  # fmt: skip
        ds.write(np.full((3, 16, 16), 9, np.uint8), window=((0, 16), (0, 16)))
    return p


def _indicators(e: Env, says: str = "ok", when: str = "count[category=aircraft] >= 1") -> Path:
    return e.file("ind.yaml", f"indicators:\n  - name: test-ind\n    when:\n      - {when}\n    says: \"{says}\"\n")


Case = tuple[str, Callable[[Env], list[str]], str]
S = "--store"

CASES: list[Case] = [
    # --- scan: files that are not usable images ---
    ("scan-missing", lambda e: ["scan", str(e.tmp / "nope.tif"), "--site", "testbase", S, e.url], r"nope\.tif: file not found"),
    ("scan-empty", lambda e: ["scan", str(e.file("empty.tif")), "--site", "testbase", S, e.url], r"empty\.tif: empty file"),
    ("scan-directory", lambda e: ["scan", str(e.tmp), "--site", "testbase", S, e.url], r"is a directory"),
    ("scan-text-as-tif", lambda e: ["scan", str(e.file("t.tif", "hello")), "--site", "testbase", S, e.url], r"t\.tif: .*(not an image|cannot open)"),
    ("scan-garbage-png", lambda e: ["scan", str(e.file("g.png", bytes(range(256)) * 8)), "--site", "testbase", S, e.url], r"g\.png: .*(not an image|cannot open)"),
    ("scan-corrupt-tiff-header", lambda e: ["scan", str(e.file("c.tif", b"II*\x00" + b"\x00" * 100)), "--site", "testbase", S, e.url], r"c\.tif: "),
    ("scan-truncated-tiff", lambda e: ["scan", str(e.file("half.tif", e.good.read_bytes()[:4000])), "--site", "testbase", S, e.url], r"half\.tif: "),
    ("scan-too-small", lambda e: ["scan", str(e.raster("tiny.tif", e.rgb(8, 8), crs=UTM, transform=UTM_T)), "--site", "testbase", S, e.url], r"tiny\.tif: image too small"),
    ("scan-no-crs-no-gsd", lambda e: ["scan", str(e.raster("plain.png", e.rgb(), driver="PNG")), "--site", "testbase", S, e.url], r"plain\.png: no CRS and no GSD"),
    ("scan-off-aoi", lambda e: ["scan", str(e.raster("far.tif", e.rgb(), crs=UTM, transform=UTM_T * Affine.translation(200000, 0))), "--site", "testbase", S, e.url], r"far\.tif covers 0\.00% of the AOI"),
    ("scan-complex-dtype", lambda e: ["scan", str(e.raster("cx.tif", e.rgb(dtype="complex64"), crs=UTM, transform=UTM_T)), "--site", "testbase", S, e.url], r"cx\.tif: "),
    ("scan-png-bomb", lambda e: ["scan", str(e.file("bomb.png", _png_declaring(20000, 20000))), "--site", "testbase", "--gsd", "0.5", S, e.url], r"bomb\.png: 20000x20000 px is too large"),
    ("scan-truncated-jpeg", lambda e: ["scan", str(e.file("cut.jpg", e.raster("whole.jpg", e.rgb(512, 512), driver="JPEG").read_bytes()[:400])), "--site", "testbase", "--gsd", "0.5", S, e.url], r"cut\.jpg: (declares 512x512 px .* corrupt|corrupt|cannot open)"),
    ("scan-local-cs", lambda e: ["scan", str(_local_cs(e)), "--site", "testbase", S, e.url], r"local\.tif: its CRS cannot be related to WGS84"),
    ("scan-collinear-gcps", lambda e: ["scan", str(_collinear_gcps(e)), "--site", "testbase", S, e.url], r"gcps\.tif: the georeference is degenerate"),
    ("scan-zero-pixel-size", lambda e: ["scan", str(_zero_pixel(e)), "--site", "testbase", S, e.url], r"zeroasset\.png: the georeference is degenerate"),
    ("scan-one-gcp", lambda e: ["scan", str(e.raster("onegcp.tif", e.rgb(), crs=UTM, transform=Affine(0.0, 0, 767000.0, 0, -0.5, 3922000.0))), "--site", "testbase", S, e.url], r"onegcp\.tif: 1 ground control points; at least 3"),
    ("scan-stac-not-json", lambda e: ["scan", str(_stac(e, "{not json")), "--site", "testbase", S, e.url], r"item\.json"),
    ("scan-stac-no-assets", lambda e: ["scan", str(_stac(e, {**STAC_OK, "assets": {}})), "--site", "testbase", S, e.url], r"item\.json.*asset"),
    ("scan-stac-missing-asset", lambda e: ["scan", str(_stac(e, STAC_OK)), "--site", "testbase", S, e.url], r"item\.json: asset 'visual': .*missing\.tif: file not found"),
    ("scan-stac-not-an-item", lambda e: ["scan", str(_stac(e, {"type": "Catalog", "id": "c"})), "--site", "testbase", S, e.url], r"item\.json"),
    ("scan-stac-nested", lambda e: ["scan", str(_stac(e, _nested(100_000))), "--site", "testbase", S, e.url], r"item\.json"),
    ("scan-path-too-long", lambda e: ["scan", str(e.tmp / ("x" * 300 + ".tif")), "--site", "testbase", S, e.url], r"x{20}.*(File name too long|cannot open)"),
    ("scan-path-too-long-dir", lambda e: ["scan", str(e.tmp / ("d" * 300) / "a.tif"), "--site", "testbase", S, e.url], r"d{20}.*(File name too long|cannot open)"),
    ("scan-nul-like-name", lambda e: ["scan", str(e.tmp / "a\tb\n.tif"), "--site", "testbase", S, e.url], r"a\\tb\\n\.tif: file not found"),
    # --- scan: values ---
    ("scan-gsd-huge", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "1e6", S, e.url], r"--gsd: GSD 1e\+06 m per pixel is outside 0\.05-30 m"),
    ("scan-gsd-tiny", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "0.01", S, e.url], r"--gsd: GSD 0\.01 m per pixel is outside"),
    ("scan-gsd-31", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "31", S, e.url], r"outside 0\.05-30 m \(pass --force"),
    ("scan-gsd-negative", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "-1", S, e.url], r"Invalid value for '--gsd'"),
    ("scan-gsd-nan", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "nan", S, e.url], r"--gsd.*(positive number|Invalid value)"),
    ("scan-gsd-inf", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "inf", S, e.url], r"--gsd.*(positive number|Invalid value)"),
    ("scan-gsd-text", lambda e: ["scan", str(e.good), "--site", "testbase", "--gsd", "half", S, e.url], r"Invalid value for '--gsd'"),
    ("scan-acquired-2999", lambda e: ["scan", str(e.good), "--site", "testbase", "--acquired", "2999-01-01", S, e.url], r"good\.tif: acquisition time 2999-01-01 is out of range"),
    ("scan-acquired-0001", lambda e: ["scan", str(e.good), "--site", "testbase", "--acquired", "0001-01-01", S, e.url], r"acquisition time 0001-01-01 is out of range: expected 1960-01-01"),
    ("scan-acquired-1959", lambda e: ["scan", str(e.good), "--site", "testbase", "--acquired", "1959-12-31", S, e.url], r"acquisition time 1959-12-31 is out of range"),
    ("scan-acquired-garbage", lambda e: ["scan", str(e.good), "--site", "testbase", "--acquired", "yesterday", S, e.url], r"bad acquisition time 'yesterday'"),
    ("scan-acquired-month-13", lambda e: ["scan", str(e.good), "--site", "testbase", "--acquired", "2024-13-01", S, e.url], r"bad acquisition time '2024-13-01'"),
    ("scan-rotation-nan", lambda e: ["scan", str(e.raster("shot.png", e.rgb(), driver="PNG")), "--site", "testbase", "--gsd", "0.5", "--center", "35.4,35.94", "--rotation", "nan", S, e.url], r"rotation nan is not a number of degrees"),
    ("scan-rotation-inf", lambda e: ["scan", str(e.raster("shot.png", e.rgb(), driver="PNG")), "--site", "testbase", "--gsd", "0.5", "--center", "35.4,35.94", "--rotation", "inf", S, e.url], r"rotation inf is not a number"),
    ("scan-center-lat-95", lambda e: ["scan", str(e.raster("shot.png", e.rgb(), driver="PNG")), "--site", "testbase", "--gsd", "0.5", "--center", "95,35.94", S, e.url], r"95.*(latitude|LAT)"),
    ("scan-center-text", lambda e: ["scan", str(e.good), "--site", "testbase", "--center", "here", S, e.url], r"--center.*LAT,LON"),
    ("scan-center-no-gsd", lambda e: ["scan", str(e.raster("shot.png", e.rgb(), driver="PNG")), "--site", "testbase", "--center", "35.4,35.94", S, e.url], r"centre anchor needs a GSD"),
    ("scan-unknown-site", lambda e: ["scan", str(e.good), "--site", "atlantis", S, e.url], r"unknown site 'atlantis'"),
    ("scan-no-site", lambda e: ["scan", str(e.good), S, e.url], r"Missing option '--site'"),
    ("scan-no-scene", lambda e: ["scan", "--site", "testbase", S, e.url], r"Missing argument"),
    ("scan-workers-and-scheduler", lambda e: ["scan", str(e.good), "--site", "testbase", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1", S, e.url], r"not both"),
    # --- stores ---
    ("store-in-memory", lambda e: ["scan", str(e.good), "--site", "testbase", S, "sqlite://"], r"'sqlite://' is an in-memory store"),
    ("store-in-memory-explicit", lambda e: ["scan", str(e.good), "--site", "testbase", S, "sqlite:///:memory:"], r"in-memory store"),
    ("store-in-memory-claims", lambda e: ["claims", "add", str(e.file("r.txt", "Two Il-76 left.")), "--source", "x", S, "sqlite://"], r"in-memory store"),
    ("store-bad-port", lambda e: ["scan", str(e.good), "--site", "testbase", S, "postgresql://u:pw@localhost:abc/db"], r"bad store URL"),
    ("store-unsupported", lambda e: ["scan", str(e.good), "--site", "testbase", S, "mysql://u@localhost/db"], r"unsupported store URL"),
    ("store-not-a-url", lambda e: ["scan", str(e.good), "--site", "testbase", S, "notaurl"], r"bad store URL 'notaurl'"),
    ("store-missing-folder", lambda e: ["scan", str(e.good), "--site", "testbase", S, f"sqlite:///{e.tmp}/no/such/dir/x.db"], r"store folder .*no/such/dir does not exist"),
    ("store-is-a-directory", lambda e: ["passes", "testbase", S, f"sqlite:///{e.tmp}"], r"store .*(cannot|unable)"),
    ("store-not-a-database", lambda e: ["passes", "testbase", S, f"sqlite:///{e.file('junk.db', 'this is not sqlite' * 100)}"], r"junk\.db.*not a database"),
    # --- sites ---
    ("sites-whole-world", lambda e: ["sites", "add", "world", "--kind", "airbase", "--bbox", "-180,-90,180,90"], r"site 'world' AOI: spans 360\.0° x 180\.0°|spans 360° of longitude"),
    ("sites-too-large", lambda e: ["sites", "add", "big", "--kind", "airbase", "--bbox", "30,30,31,31"], r"site 'big' AOI: \d+ km² is too large"),
    ("sites-antimeridian-bbox", lambda e: ["sites", "add", "dateline", "--kind", "airbase", "--bbox", "179.9,-16.5,-179.9,-16.4"], r"crosses the 180° meridian"),
    ("sites-antimeridian-aoi", lambda e: ["sites", "add", "dateline", "--kind", "airbase", "--aoi", str(e.file("am.geojson", json.dumps(
        {"type": "Polygon", "coordinates": [[[179.9, -16.5], [-179.9, -16.5], [-179.9, -16.4], [179.9, -16.4], [179.9, -16.5]]]})))],
        r"across the 180° meridian is not supported"),  # fmt: skip
    ("sites-name-too-long", lambda e: ["sites", "add", "a" * 250, "--kind", "airbase", "--bbox", "35.94,35.40,35.95,35.41"], r"site name a+…: 250 characters; at most 64"),
    ("sites-name-bad-chars", lambda e: ["sites", "add", "Bad Name!", "--kind", "airbase", "--bbox", "35.94,35.40,35.95,35.41"], r"site name 'Bad Name!'"),
    ("sites-bbox-three-numbers", lambda e: ["sites", "add", "x", "--kind", "airbase", "--bbox", "1,2,3"], r"--bbox '1,2,3': expected W,S,E,N"),
    ("sites-bbox-lat-100", lambda e: ["sites", "add", "x", "--kind", "airbase", "--bbox", "0,80,1,100"], r"not WGS84 longitude/latitude"),
    ("sites-bbox-nan", lambda e: ["sites", "add", "x", "--kind", "airbase", "--bbox", "nan,0,1,1"], r"finite numbers"),
    ("sites-unknown-kind", lambda e: ["sites", "add", "x", "--kind", "castle", "--bbox", "35.94,35.40,35.95,35.41"], r"Invalid value for '--kind'"),
    ("sites-aoi-missing", lambda e: ["sites", "add", "x", "--kind", "airbase", "--aoi", str(e.tmp / "none.geojson")], r"none\.geojson: file not found"),
    ("sites-aoi-not-json", lambda e: ["sites", "add", "x", "--kind", "airbase", "--aoi", str(e.file("a.geojson", "{nope"))], r"a\.geojson: not readable GeoJSON"),
    ("sites-aoi-nested", lambda e: ["sites", "add", "x", "--kind", "airbase", "--aoi", str(e.file("deep.geojson", _nested(100_000)))], r"deep\.geojson: not readable GeoJSON"),
    ("sites-aoi-point", lambda e: ["sites", "add", "x", "--kind", "airbase", "--aoi", str(e.file("pt.geojson", '{"type": "Point", "coordinates": [35.9, 35.4]}'))], r"expected a Polygon, got Point"),
    ("sites-aoi-list", lambda e: ["sites", "add", "x", "--kind", "airbase", "--aoi", str(e.file("l.geojson", "[1, 2]"))], r"l\.geojson: not a GeoJSON object"),
    ("sites-import-nested", lambda e: ["sites", "import", str(e.file("deep2.geojson", _nested(100_000)))], r"deep2\.geojson: not valid JSON \(nested too deeply\)"),
    ("sites-import-missing", lambda e: ["sites", "import", str(e.tmp / "none.geojson")], r"none\.geojson: file not found"),
    ("sites-show-unknown", lambda e: ["sites", "show", "atlantis"], r"unknown site 'atlantis'"),
    ("sites-duplicate", lambda e: ["sites", "add", "testbase", "--kind", "airbase", "--bbox", "35.94,35.40,35.95,35.41"], r"testbase.*(exists|already)"),
    # --- compare / inventory / passes / timeline ---
    ("compare-backwards", lambda e: _two_passes(e) + ["compare", "testbase", "--from", "3", "--to", "2", S, e.url], r"--from pass 3 \(2024-03-02\) is later than --to pass 2 \(2024-03-01\)"),
    ("compare-same-pass", lambda e: ["compare", "testbase", "--from", "1", "--to", "1", S, e.url], r"same pass|needs two"),
    ("compare-unknown-pass", lambda e: _two_passes(e) + ["compare", "testbase", "--from", "99", S, e.url], r"99"),
    ("compare-one-pass", lambda e: ["compare", "testbase", S, e.url], r"has 1 stored pass\(es\); comparing needs two"),
    ("compare-unknown-site", lambda e: ["compare", "atlantis", S, e.url], r"site 'atlantis' has 0 stored pass\(es\)"),
    ("compare-bad-date", lambda e: _two_passes(e) + ["compare", "testbase", "--to", "1999-01-01", S, e.url], r"no pass of site 'testbase' to 1999-01-01 \(its passes run from 2024-03-01 to 2024-03-02\)"),
    ("compare-one-in-span", lambda e: _two_passes(e) + ["compare", "testbase", "--from", "2024-03-02", S, e.url], r"only pass 3 \(2024-03-02\) of site 'testbase' lies from 2024-03-02; comparing needs two"),
    ("span-not-a-date", lambda e: ["timeline", "testbase", "--from", "last week", S, e.url], r"Invalid value for '--from': expected a pass id or a date"),
    ("span-empty-report", lambda e: ["report", "testbase", "--from", "2030-01-01", "-o", str(e.tmp / "r.html"), S, e.url], r"no pass of site 'testbase' from 2030-01-01"),
    ("span-pass-of-other-site", lambda e: ["export", "testbase", "--from", "99", "-o", str(e.tmp / "x.geojson"), S, e.url], r"--from 99: no pass 99 of site 'testbase'; its passes: 1"),
    ("export-pass-and-span", lambda e: ["export", "testbase", "--pass", "1", "--to", "1", "-o", str(e.tmp / "x.geojson"), S, e.url], r"either --pass or --from/--to"),
    ("inventory-unknown-site", lambda e: ["inventory", "atlantis", S, e.url], r"no passes of site 'atlantis'"),
    ("inventory-bad-by", lambda e: ["inventory", "testbase", "--by", "colour", S, e.url], r"Invalid value for '--by'"),
    ("timeline-unknown-site", lambda e: ["timeline", "atlantis", S, e.url], r"no stored passes of site 'atlantis'"),
    # --- assess and indicators ---
    ("assess-bad-format-spec", lambda e: ["assess", "testbase", "--indicators", str(_indicators(e, says="{count:+.0q}")), S, e.url], r"ind\.yaml: indicator 'test-ind': bad format in 'says'"),
    ("assess-bad-yaml", lambda e: ["assess", "testbase", "--indicators", str(e.file("bad.yaml", "indicators: [\n")), S, e.url], r"bad\.yaml: not valid YAML"),
    ("assess-unknown-metric", lambda e: ["assess", "testbase", "--indicators", str(_indicators(e, when="wingspan >= 3")), S, e.url], r"unknown metric 'wingspan'"),
    ("assess-bad-condition", lambda e: ["assess", "testbase", "--indicators", str(_indicators(e, when="count >>= 3")), S, e.url], r"cannot parse condition"),
    ("assess-missing-indicators", lambda e: ["assess", "testbase", "--indicators", str(e.tmp / "none.yaml"), S, e.url], r"none\.yaml: no such indicator file"),
    ("assess-unknown-site", lambda e: ["assess", "atlantis", S, e.url], r"unknown site 'atlantis'"),
    # --- detect ---
    ("detect-missing", lambda e: ["detect", str(e.tmp / "nope.tif")], r"nope\.tif: file not found"),
    ("detect-gsd-huge", lambda e: ["detect", str(e.good), "--gsd", "1e6"], r"good\.tif: GSD 1e\+06 m per pixel is outside"),
    ("detect-png-bomb", lambda e: ["detect", str(e.file("bomb.png", _png_declaring(20000, 20000)))], r"bomb\.png: 20000x20000 px is too large"),
    ("detect-pixel-budget", lambda e: _budget(e, 100 * 100) + ["detect", str(e.good)], r"good\.tif: 800x600 px is over the whole-image detection budget \(100x100 px\)"),
    ("detect-sparse-over-budget", lambda e: ["detect", str(_sparse_tiff(e, 60000))], r"sparse\.tif: 60000x60000 px is over the whole-image detection budget \(40000x40000 px\)"),
    ("detect-tile-not-32", lambda e: ["detect", str(e.good), "--tile", "100"], r"100 is not a multiple of 32"),
    ("detect-unknown-site", lambda e: ["detect", str(e.good), "--site", "atlantis", "--model", str(e.tmp / "none.onnx")], r"(atlantis|none\.onnx)"),
    # --- claims (existing behaviour) ---
    ("claims-missing-file", lambda e: ["claims", "add", str(e.tmp / "none.txt"), "--source", "x", S, e.url], r"none\.txt"),
    ("claims-empty-file", lambda e: ["claims", "add", str(e.file("empty.txt", "")), "--source", "x", S, e.url], r"empty\.txt"),
    ("claims-published-2999", lambda e: ["claims", "add", str(e.file("r.txt", "Two Il-76 left.")), "--source", "x", "--published", "2999-01-01", S, e.url], r"2999"),
    ("claims-bad-reliability", lambda e: ["claims", "add", str(e.file("r.txt", "Two Il-76 left.")), "--source", "x", "--reliability", "Z", S, e.url], r"Invalid value for '--reliability'"),
    # --- the environment ---
    ("home-is-a-file", lambda e: _home_file(e) + ["passes", "testbase"], r"SITEWATCH_HOME"),
    ("unknown-command", lambda e: ["frobnicate"], r"No such command 'frobnicate'"),
]


def _two_passes(e: Env) -> list[str]:
    """A second and third pass in the store (ids 2, 3) before the case runs; returns no arguments."""
    from datetime import UTC, datetime

    with open_store(e.url) as store:
        store.delete_pass(1)
        store.save_pass(_pass("/data/b.tif", site="testbase", acquired=datetime(2024, 3, 1, tzinfo=UTC)))
        store.save_pass(_pass("/data/c.tif", site="testbase", acquired=datetime(2024, 3, 2, tzinfo=UTC)))
    return []


def _budget(e: Env, px: int) -> list[str]:
    import os

    os.environ["SITEWATCH_DETECT_MAX_PIXELS"] = str(px)  # removed again by the test's monkeypatch
    return []


def _home_file(e: Env) -> list[str]:
    import os

    os.environ["SITEWATCH_HOME"] = str(e.file("home-file", "not a folder"))  # restored by the autouse fixture
    return []


def test_the_matrix_is_large() -> None:
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "argv", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_store_unchanged(name: str, argv: Callable[[Env], list[str]], expect: str, env: Env,
                                                     capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import re

    monkeypatch.setenv("SITEWATCH_HOME", str(env.tmp / "home"))
    monkeypatch.setenv("SITEWATCH_DETECT_MAX_PIXELS", str(40_000 * 40_000))  # the default; restored (unset) afterwards
    from sitewatch.sites.watchlist import user_watchlist_path

    home_sites = user_watchlist_path(env.tmp / "home")
    home_sites.parent.mkdir(parents=True, exist_ok=True)
    add_site(Site(name="testbase", title="Test base", kind="airbase", country="", aoi=AOI), home=env.tmp / "home")
    args = argv(env)
    before = _rows(env.url)
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"{name}: exit {code}, stderr: {err!r}"
    assert len(lines) == 1, f"{name}: {len(lines)} stderr lines: {err!r}"
    assert "Traceback" not in err and "internal error" not in err
    assert re.search(expect, lines[0]), f"{name}: {lines[0]!r} does not match {expect!r}"
    assert _rows(env.url) == before
