"""The scan pipeline: AOI windows, coverage checks, georeferenced footprints, rescans, pixel space."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from sitewatch.detect.base import Detector
from sitewatch.errors import CoverageError, GeoreferenceError, LowCoverageWarning
from sitewatch.imagery import ArrayScene, open_scene
from sitewatch.pipeline import scan
from sitewatch.report.exports import export_passes
from sitewatch.store import open_store
from sitewatch.types import Detection, OrientedBox


@dataclasses.dataclass
class FakeSite:
    """The parts of a Site that scanning uses."""

    name: str
    aoi: Polygon
    priors: dict = dataclasses.field(default_factory=dict)


class FakeDetector(Detector):
    """Returns fixed boxes (scene pixels) that lie inside the requested window; records the calls."""

    name, version = "fake-det", "1.0"

    def __init__(self, boxes: list[tuple[float, float, float, float, float, str]]) -> None:
        self.boxes = boxes
        self.calls: list[dict] = []

    def detect(self, scene, *, window=None, gsd_m=None, progress=None):
        self.calls.append({"window": window, "gsd_m": gsd_m})
        w = window or Window(0, 0, scene.width, scene.height)
        out = []
        for cx, cy, length, width, heading, cat in self.boxes:
            if w.col_off <= cx < w.col_off + w.width and w.row_off <= cy < w.row_off + w.height:
                out.append(Detection(OrientedBox.make(cx, cy, length, width, heading), cat, 0.9))
        if progress:
            progress(1, 1)
        return out


def write_geotiff(path: Path, width: int, height: int, crs: str, transform: Affine) -> Path:
    rgb = np.random.default_rng(0).integers(0, 255, (3, height, width), dtype=np.uint8)
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8", crs=crs, transform=transform
    ) as dst:
        dst.write(rgb)
        dst.update_tags(TIFFTAG_DATETIME="2024:05:06 07:08:09")
    return path


# A UTM zone 36N scene at 0.5 m: 800 x 600 px = 400 m x 300 m near Hmeimim.
UTM = "EPSG:32636"
UTM_T = Affine(0.5, 0, 767000.0, 0, -0.5, 3922000.0)


def _lonlat(transform: Affine, crs: str, x: float, y: float) -> tuple[float, float]:
    e, n = transform * (x, y)
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(e, n)


def _aoi_px(transform: Affine, crs: str, x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A WGS84 AOI whose corners are the given scene pixels."""
    pts = [_lonlat(transform, crs, x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return Polygon(pts)


@pytest.fixture
def utm_scene(tmp_path: Path) -> Path:
    return write_geotiff(tmp_path / "utm.tif", 800, 600, UTM, UTM_T)


def test_scan_reads_only_the_aoi_and_stores_a_georeferenced_pass(utm_scene: Path) -> None:
    site = FakeSite("testbase", _aoi_px(UTM_T, UTM, 100, 100, 500, 400))
    det = FakeDetector(
        [
            (200.0, 200.0, 40, 30, 30, "aircraft"),
            (450.5, 350.25, 20, 8, 90, "large-vehicle"),
            (700.0, 500.0, 40, 30, 0, "aircraft"),  # outside the AOI window
            (505.0, 250.0, 10, 4, 0, "small-vehicle"),  # inside the window's padding, outside the AOI
        ]
    )
    with open_store() as store, open_scene(utm_scene) as scene:
        p = scan(scene, site, det, store)
        w = det.calls[0]["window"]
        assert (w.col_off, w.row_off) == pytest.approx((100, 100), abs=1)
        assert (w.width, w.height) == pytest.approx((400, 300), abs=2)
        assert det.calls[0]["gsd_m"] == pytest.approx(0.5)
        assert [d.category for d in p.detections] == ["aircraft", "large-vehicle"]
        assert p.id is not None and all(d.id is not None for d in p.detections)
        assert p.aoi_coverage == pytest.approx(1.0, abs=1e-3)
        assert p.crs == "EPSG:32636" and p.transform == tuple(UTM_T)[:6]
        assert p.gsd_m == pytest.approx(0.5) and p.model == "fake-det 1.0"
        assert p.acquired.isoformat() == "2024-05-06T07:08:09+00:00"
        assert Polygon(p.detections[0].footprint).centroid.distance(
            Polygon([_lonlat(UTM_T, UTM, 200, 200)] * 3).centroid
        ) < 1e-7
        # rescanning the same scene replaces the pass
        p2 = scan(scene, site, FakeDetector([(300.0, 300.0, 40, 30, 0, "helicopter")]), store)
        (only,) = store.list_passes("testbase")
        assert only.id == p2.id != p.id and [d.category for d in only.detections] == ["helicopter"]


def test_partial_and_missing_coverage(utm_scene: Path) -> None:
    half = FakeSite("half", _aoi_px(UTM_T, UTM, 600, 100, 1000, 400))  # right half off the image
    off = FakeSite("off", _aoi_px(UTM_T, UTM, 2000, 2000, 2400, 2300))
    with open_store() as store, open_scene(utm_scene) as scene:
        with pytest.warns(LowCoverageWarning, match=r"covers only 50\.0% of the AOI of site 'half'"):
            p = scan(scene, half, FakeDetector([(700.0, 200.0, 40, 30, 0, "aircraft")]), store)
        assert p.aoi_coverage == pytest.approx(0.5, abs=0.01) and len(p.detections) == 1
        with pytest.raises(CoverageError, match=r"utm.tif covers 0\.00% of the AOI of site 'off'"):
            scan(scene, off, FakeDetector([]), store)
        assert store.list_passes("off") == []


def test_pixel_space_screenshot_is_measured_with_gsd(tmp_path: Path) -> None:
    scene = ArrayScene(np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8), path="shot.png")
    site = FakeSite("anywhere", box(0, 0, 1, 1))
    det = FakeDetector([(50.0, 60.0, 40, 30, 10, "aircraft")])
    with open_store() as store:
        with pytest.raises(GeoreferenceError, match="no CRS and no GSD: pass --gsd"):
            scan(scene, site, det, store)
        p = scan(scene, site, det, store, gsd_m=0.5)
    assert det.calls[-1]["window"] is None
    assert p.crs is None and p.transform is None and p.aoi_coverage is None and p.footprint_wkt is None
    assert p.gsd_m == 0.5 and p.detections[0].footprint is None
    assert p.detections[0].box.cx == 50.0


@pytest.mark.parametrize(
    ("crs", "transform"),
    [
        (UTM, UTM_T),
        # geographic: ~0.5 m pixels at 35.4 N (4.5e-6 deg latitude, 5.5e-6 deg longitude)
        ("EPSG:4326", Affine(5.5e-6, 0, 35.940, 0, -4.5e-6, 35.405)),
    ],
)
def test_detection_at_known_pixel_lands_at_right_lonlat(tmp_path: Path, crs: str, transform: Affine) -> None:
    path = write_geotiff(tmp_path / "known.tif", 800, 600, crs, transform)
    site = FakeSite("known", _aoi_px(transform, crs, 10, 10, 790, 590))
    px = (321.25, 234.75)
    with open_store() as store, open_scene(path) as scene:
        p = scan(scene, site, FakeDetector([(*px, 30, 12, 60, "aircraft")]), store)
    out = export_passes([p], site, "geojson", tmp_path / "known.geojson")
    got = gpd.read_file(out)
    assert len(got) == 1 and got.crs.to_epsg() == 4326
    c = got.geometry.iloc[0].centroid
    lon, lat = _lonlat(transform, crs, *px)
    _, _, dist_m = Geod(ellps="WGS84").inv(c.x, c.y, lon, lat)
    gsd = 0.5 if crs == UTM else 0.5  # both scenes are ~0.5 m/px
    assert dist_m <= 0.5 * gsd, f"{dist_m:.3f} m off"
    # the box's corners too: the footprint is the oriented box on the ground
    corners = OrientedBox.make(*px, 30, 12, 60).corners()
    for (x, y), (flon, flat) in zip(corners, got.geometry.iloc[0].exterior.coords[:-1], strict=True):
        elon, elat = _lonlat(transform, crs, x, y)
        assert Geod(ellps="WGS84").inv(flon, flat, elon, elat)[2] <= 0.25
    assert math.isclose(got["lon"].iloc[0], c.x) and got["category"].iloc[0] == "aircraft"


def test_simulated_scene_is_flagged(tmp_path: Path) -> None:
    from sitewatch.imagery.simulate import is_simulated, simulate_site

    aoi = box(35.9425, 35.4015, 35.9435, 35.4025)
    sc = simulate_site(tmp_path, aoi, extent_m=300, n_aircraft=2, n_helicopters=1, n_vehicles=1, departed=1, arrived=0)
    with open_scene(sc.passes[0].path) as scene, open_store() as store:
        assert is_simulated(scene)
        p = scan(scene, FakeSite("sim", aoi), FakeDetector([]), store)
    assert p.simulated is True
    with open_scene(write_geotiff(tmp_path / "other.tif", 50, 50, UTM, UTM_T)) as s:
        assert not is_simulated(s)


def test_crs_is_recorded_for_reuse(utm_scene: Path) -> None:
    site = FakeSite("crs", _aoi_px(UTM_T, UTM, 0, 0, 800, 600))
    with open_store() as store, open_scene(utm_scene) as scene:
        p = scan(scene, site, FakeDetector([(10.0, 10.0, 20, 10, 0, "aircraft")]), store)
    t = Affine(*p.transform)
    assert CRS.from_user_input(p.crs) == CRS.from_epsg(32636)
    assert t * (10, 10) == pytest.approx(UTM_T * (10, 10))
