import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Geod
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely.geometry import box

from _rasters import write_raster
from sitewatch.errors import GeoreferenceError, SceneError
from sitewatch.imagery import (
    MIN_SIDE_PX,
    coverage,
    footprint_wgs84,
    gsd_of,
    lonlat_to_pixel,
    open_scene,
    pixel_to_lonlat,
    window_for_polygon,
)

GEOD = Geod(ellps="WGS84")


def _rgb(h: int = 64, w: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, h, w), dtype=np.uint8)


# --- georeference: exact answers -------------------------------------------------------------


def test_utm_pixel_lands_on_known_lonlat(tmp_path: Path) -> None:
    # UTM 37N: easting 500000 is the central meridian (39 E) and northing 0 the equator.
    path = write_raster(tmp_path / "utm.tif", _rgb(), crs="EPSG:32637", transform=from_origin(499_900.0, 100.0, 1.0, 1.0))
    with open_scene(path) as scene:
        lon, lat = pixel_to_lonlat(scene, [100.0], [100.0])
        assert lon[0] == pytest.approx(39.0, abs=1e-9)
        assert lat[0] == pytest.approx(0.0, abs=1e-9)
        x, y = lonlat_to_pixel(scene, lon, lat)
        assert (x[0], y[0]) == (pytest.approx(100.0, abs=1e-6), pytest.approx(100.0, abs=1e-6))
        assert scene.gsd_m == pytest.approx(1.0)
        assert scene.metadata["georeference"] == "file"


def test_geographic_pixel_and_geodesic_gsd(tmp_path: Path) -> None:
    t = from_origin(35.9, 35.45, 1e-5, 1e-5)
    path = write_raster(tmp_path / "geo.tif", _rgb(), crs="EPSG:4326", transform=t)
    with open_scene(path) as scene:
        lon, lat = pixel_to_lonlat(scene, [100.0, 0.5], [200.0, 0.5])
        assert lon[0] == pytest.approx(35.901, abs=1e-12)
        assert lat[0] == pytest.approx(35.448, abs=1e-12)
        # 1e-5 degree pixels at ~35.45 N: about 0.907 m east-west and 1.109 m north-south.
        clat = 35.45 - 32 * 1e-5
        dx = GEOD.inv(35.9, clat, 35.9 + 1e-5, clat)[2]
        dy = GEOD.inv(35.9, clat, 35.9, clat - 1e-5)[2]
        assert 0.90 < dx < 0.91 and 1.10 < dy < 1.12
        assert scene.gsd_m == pytest.approx(math.sqrt(dx * dy), rel=1e-4)


def test_web_mercator_gsd_is_ground_metres(tmp_path: Path) -> None:
    # At 60 N the Mercator scale is 2: 1 m grid pixels are 0.5 m on the ground.
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(10.0, 60.0)
    path = write_raster(tmp_path / "merc.tif", _rgb(), crs="EPSG:3857", transform=from_origin(x - 40, y + 32, 1.0, 1.0))
    with open_scene(path) as scene:
        assert scene.gsd_m == pytest.approx(0.5, rel=2e-3)


def test_anchor_center_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "shot.png"
    write_raster(path, _rgb(400, 600), driver="PNG")
    lat0, lon0 = 35.401, 35.949
    with open_scene(path, gsd_m=0.5, center=(lat0, lon0)) as north_up:
        lon, lat = pixel_to_lonlat(north_up, [300.0, 300.0, 500.0], [200.0, 0.0, 200.0])
        assert (lon[0], lat[0]) == (pytest.approx(lon0, abs=1e-9), pytest.approx(lat0, abs=1e-9))
        az, _, dist = GEOD.inv(lon0, lat0, lon[1], lat[1])
        assert dist == pytest.approx(100.0, abs=0.01) and az == pytest.approx(0.0, abs=1e-6)
        az, _, dist = GEOD.inv(lon0, lat0, lon[2], lat[2])
        assert dist == pytest.approx(100.0, abs=0.01) and az == pytest.approx(90.0, abs=1e-6)
        assert north_up.metadata["georeference"] == "anchor" and north_up.gsd_m == 0.5
    with open_scene(path, gsd_m=0.5, center=(lat0, lon0), rotation_deg=90.0) as east_up:
        lon, lat = pixel_to_lonlat(east_up, [300.0], [0.0])  # 200 px above the centre: 100 m east
        az, _, dist = GEOD.inv(lon0, lat0, lon[0], lat[0])
        assert dist == pytest.approx(100.0, abs=0.01) and az == pytest.approx(90.0, abs=1e-6)
        assert gsd_of(east_up) == 0.5


def test_anchor_needs_gsd(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "shot.png", _rgb(), driver="PNG")
    with pytest.raises(GeoreferenceError, match="needs a GSD"):
        open_scene(path, center=(35.0, 35.0))


def test_screenshot_without_anchor_is_pixel_space(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "shot.jpg", _rgb(), driver="JPEG")
    with open_scene(path, gsd_m=0.6) as scene:
        assert not scene.georeferenced and scene.crs is None and scene.gsd_m == 0.6
        assert coverage(scene, box(35, 35, 36, 36)) is None
        with pytest.raises(GeoreferenceError, match="not georeferenced"):
            footprint_wgs84(scene)
    with open_scene(path) as scene:
        assert scene.gsd_m is None and gsd_of(scene) is None


def test_world_file_in_degrees(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "ge.png", _rgb(), driver="PNG")
    (tmp_path / "ge.pgw").write_text("0.00001\n0\n0\n-0.00001\n35.900005\n35.449995\n")
    with open_scene(path) as scene:
        assert scene.metadata["georeference"] == "world-file" and scene.crs.to_epsg() == 4326
        lon, lat = pixel_to_lonlat(scene, [100.0], [200.0])
        assert lon[0] == pytest.approx(35.901, abs=1e-9) and lat[0] == pytest.approx(35.448, abs=1e-9)


def test_gcps_give_transform(tmp_path: Path) -> None:
    t = from_origin(500_000.0, 3_900_000.0, 2.0, 2.0)
    gcps = [GroundControlPoint(row=r, col=c, x=(t * (c, r))[0], y=(t * (c, r))[1]) for r, c in [(0, 0), (0, 79), (63, 0), (63, 79)]]
    path = write_raster(tmp_path / "gcp.tif", _rgb(), gcps=(gcps, "EPSG:32636"))
    with open_scene(path) as scene:
        assert scene.metadata["georeference"] == "gcps"
        assert scene.gsd_m == pytest.approx(2.0, rel=1e-6)
        assert scene.transform.almost_equals(t, precision=1e-6)


@pytest.mark.parametrize(
    "pixels, world",
    [
        ([(0, 0), (10, 10), (20, 20)], [(35.94, 35.40), (35.9401, 35.40), (35.9402, 35.40)]),  # both on a line
        ([(0, 0), (0, 79), (63, 0)], [(35.94, 35.40), (35.94, 35.40), (35.94, 35.40)]),  # one ground point
        ([(0, 0), (5, 5), (10, 10)], [(35.94, 35.40), (35.95, 35.40), (35.94, 35.41)]),  # pixels on a line
    ],
)
def test_collinear_control_points_are_refused_before_the_fit(tmp_path: Path, pixels: list, world: list) -> None:
    """Whatever the rounding of the singular fit, collinear control points (in the image or on the ground)
    give the one-line degenerate-georeference error."""
    gcps = [GroundControlPoint(row=r, col=c, x=x, y=y) for (c, r), (x, y) in zip(pixels, world, strict=True)]
    path = write_raster(tmp_path / "gcp.tif", _rgb(), gcps=(gcps, "EPSG:4326"))
    with pytest.raises(GeoreferenceError, match="gcp.tif: the georeference is degenerate"):
        open_scene(path)


def test_window_footprint_and_coverage(tmp_path: Path) -> None:
    t = from_origin(35.9, 35.45, 1e-4, 1e-4)
    path = write_raster(tmp_path / "geo.tif", _rgb(100, 200), crs="EPSG:4326", transform=t)
    with open_scene(path) as scene:
        aoi = box(35.9010, 35.4450, 35.9030, 35.4480)  # cols 10..30, rows 20..50
        w = window_for_polygon(scene, aoi)
        assert (w.col_off, w.row_off, w.width, w.height) == (10, 20, 20, 30)
        w = window_for_polygon(scene, aoi, pad_px=15)
        assert (w.col_off, w.row_off, w.width, w.height) == (0, 5, 45, 60)
        assert footprint_wgs84(scene).bounds == pytest.approx((35.9, 35.44, 35.92, 35.45), abs=1e-9)
        assert coverage(scene, aoi) == pytest.approx(1.0)
        half_out = box(35.91, 35.445, 35.93, 35.446)  # half of it east of the image
        assert coverage(scene, half_out) == pytest.approx(0.5, abs=1e-6)
        assert coverage(scene, box(36.0, 36.0, 36.1, 36.1)) == 0.0


# --- bands, stretch, masks ---------------------------------------------------------------------


def test_grey_becomes_rgb(tmp_path: Path) -> None:
    grey = np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) % 256
    path = write_raster(tmp_path / "g.png", grey.astype(np.uint8), driver="PNG")
    with open_scene(path) as scene:
        rgb, valid = scene.read_rgb()
        assert rgb.shape == (64, 80, 3) and valid.all()
        assert (rgb[..., 0] == grey).all() and (rgb[..., 2] == grey).all()


def test_rgba_alpha_is_mask(tmp_path: Path) -> None:
    data = np.concatenate([_rgb(), np.full((1, 64, 80), 255, np.uint8)])
    data[3, :10, :] = 0
    path = write_raster(tmp_path / "a.png", data, driver="PNG")
    with open_scene(path) as scene:
        rgb, valid = scene.read_rgb()
        assert not valid[:10].any() and valid[10:].all()
        assert (rgb[20:, :, 1] == data[1, 20:]).all()


def test_rgbn_takes_rgb_by_colorinterp(tmp_path: Path) -> None:
    data = np.stack([np.full((64, 80), v, np.uint8) for v in (10, 20, 30, 40)])
    ci = [ColorInterp.undefined, ColorInterp.blue, ColorInterp.green, ColorInterp.red]  # NIR, B, G, R
    path = write_raster(tmp_path / "n.tif", data, colorinterp=ci, photometric="MINISBLACK")
    with open_scene(path) as scene:
        rgb, _ = scene.read_rgb(Window(0, 0, 4, 4))
        assert tuple(rgb[0, 0]) == (40, 30, 20)


def test_many_bands_without_interp_use_first_three(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = np.stack([np.full((64, 80), v, np.uint8) for v in (1, 2, 3, 4, 5)])
    path = write_raster(tmp_path / "m.tif", data, photometric="MINISBLACK", colorinterp=[ColorInterp.undefined] * 5)
    with caplog.at_level("WARNING"), open_scene(path) as scene:
        rgb, _ = scene.read_rgb(Window(0, 0, 2, 2))
        assert tuple(rgb[0, 0]) == (1, 2, 3)
    assert "using bands 1, 2, 3" in caplog.text


def test_uint16_stretch_and_nodata(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(1000, 3000, 101).astype(np.uint16), (64, 1))  # 64 x 101
    data = np.stack([ramp, ramp, ramp])
    data[:, :5, :] = 0  # nodata stripe
    path = write_raster(tmp_path / "u16.tif", data, nodata=0, crs="EPSG:32636", transform=from_origin(0, 0, 1, 1))
    with open_scene(path) as scene:
        rgb, valid = scene.read_rgb()
        assert not valid[:5].any() and valid[5:].all()
        assert (rgb[:5] == 0).all()
        # 2-98 % of a uniform 1000..3000 ramp: 1040..2960.
        lo, hi = scene.metadata["stretch"][1]
        assert lo == pytest.approx(1040, abs=1) and hi == pytest.approx(2960, abs=1)
        assert rgb[10, 0, 0] == 0 and rgb[10, 100, 0] == 255
        assert rgb[10, 50, 0] == pytest.approx(127.5, abs=1.5)
        # A window reads with the same scene-wide stretch.
        sub, _ = scene.read_rgb(Window(50, 10, 1, 1))
        assert sub[0, 0, 0] == rgb[10, 50, 0]


def test_window_outside_is_invalid_and_out_shape(tmp_path: Path) -> None:
    data = _rgb()
    path = write_raster(tmp_path / "w.tif", data)
    with open_scene(path) as scene:
        rgb, valid = scene.read_rgb(Window(-10, -10, 20, 20))
        assert not valid[:10].any() and not valid[:, :10].any() and valid[10:, 10:].all()
        assert (rgb[10:, 10:, 0] == data[0, :10, :10]).all()
        small, v = scene.read_rgb(out_shape=(32, 40))
        assert small.shape == (32, 40, 3) and v.all()


def test_big_cog_window_is_cheap_and_overviews_used(tmp_path: Path) -> None:
    # A 20000 x 20000 tiled, sparse GeoTIFF: reading one window must not touch the rest.
    path = tmp_path / "big.tif"
    prof = dict(driver="GTiff", width=20000, height=20000, count=3, dtype="uint8", tiled=True, blockxsize=512,
                blockysize=512, compress="deflate", SPARSE_OK=True, crs="EPSG:32636", transform=from_origin(0, 0, 0.5, 0.5))
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.full((3, 512, 512), 200, np.uint8), window=Window(10240, 10240, 512, 512))
    # Cheap means few bytes read, not a wall-clock figure (timings belong in bench/): the file is sparse,
    # so reading the window must not materialise the 1.2 GB of the whole raster.
    with open_scene(path) as scene:
        rgb, _ = scene.read_rgb(Window(10240, 10240, 512, 512))
    assert path.stat().st_size < 5_000_000
    assert (rgb == 200).all()

    # Overviews serve decimated reads: make full-res pixels differ from (stale) overviews.
    small = tmp_path / "ov.tif"
    write_raster(small, np.full((3, 1024, 1024), 50, np.uint8), tiled=True, overviews=[2, 4, 8])
    with rasterio.open(small, "r+") as dst:
        dst.write(np.full((3, 1024, 1024), 250, np.uint8))
    with open_scene(small) as scene:
        assert scene.metadata["overviews"] == 3
        assert (scene.read_rgb(out_shape=(128, 128))[0] == 50).all()
        assert (scene.read_rgb(Window(0, 0, 64, 64))[0] == 250).all()


# --- time ---------------------------------------------------------------------------------------


def test_acquired_from_tag_and_argument(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "t.tif", _rgb(), tags={"TIFFTAG_DATETIME": "2024:03:01 10:15:00"})
    with open_scene(path) as scene:
        assert scene.acquired.isoformat() == "2024-03-01T10:15:00+00:00"
    with open_scene(path, acquired="2023-12-31T23:00:00-02:00") as scene:
        assert scene.acquired.isoformat() == "2024-01-01T01:00:00+00:00"
    with pytest.raises(SceneError, match=r"t\.tif: bad acquisition time 'last tuesday'"):
        open_scene(path, acquired="last tuesday")


# --- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_raise_one_line(tmp_path: Path) -> None:
    cases: dict[str, str] = {}
    cases[str(tmp_path / "missing.tif")] = "file not found"
    (tmp_path / "empty.jpg").write_bytes(b"")
    cases[str(tmp_path / "empty.jpg")] = r"empty file \(0 bytes\)"
    (tmp_path / "notes.tif").write_text("hello, this is not an image\n" * 20)
    cases[str(tmp_path / "notes.tif")] = "not an image"
    good = write_raster(tmp_path / "good.jpg", _rgb(512, 512), driver="JPEG")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:400])
    cases[str(tmp_path / "cut.jpg")] = "corrupt|cannot open|not an image"
    write_raster(tmp_path / "dot.png", np.zeros((3, 1, 1), np.uint8), driver="PNG")
    cases[str(tmp_path / "dot.png")] = rf"too small \(1x1 px\); minimum is {MIN_SIDE_PX}x{MIN_SIDE_PX}"
    write_raster(tmp_path / "two.tif", np.zeros((2, 32, 32), np.uint8), photometric="MINISBLACK")
    cases[str(tmp_path / "two.tif")] = "unsupported band count 2"
    write_raster(tmp_path / "cplx.tif", np.zeros((1, 32, 32), np.complex64))
    cases[str(tmp_path / "cplx.tif")] = "unsupported pixel type complex64"
    for src, pattern in cases.items():
        with pytest.raises(SceneError, match=pattern) as info:
            open_scene(src)
        msg = str(info.value)
        assert "\n" not in msg and Path(src).name in msg, msg


def test_bad_gsd(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "s.png", _rgb(), driver="PNG")
    with pytest.raises(GeoreferenceError, match="positive"):
        open_scene(path, gsd_m=-1.0)


def test_pixel_to_lonlat_with_bare_transform() -> None:
    lon, lat = pixel_to_lonlat(Affine(1, 0, 499_900, 0, -1, 100), [100], [100], crs="EPSG:32637")
    assert lon[0] == pytest.approx(39.0) and lat[0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(GeoreferenceError):
        pixel_to_lonlat(Affine.identity(), [0], [0])


def test_real_screenshots_open_in_pixel_space(data_dir: Path) -> None:
    """One real image per dataset opens, reads decimated and by window, and stays in pixel space."""
    seen = 0
    for ds in sorted(p for p in data_dir.iterdir() if (p / "images").is_dir()):
        img = next(iter(sorted((ds / "images").iterdir())), None)
        if img is None:
            continue
        with open_scene(img, gsd_m=0.5) as scene:
            assert scene.width >= MIN_SIDE_PX and not scene.georeferenced and scene.gsd_m == 0.5
            small, valid = scene.read_rgb(out_shape=(64, 64))
            assert small.shape == (64, 64, 3) and valid.all() and small.std() > 1, img
            win, _ = scene.read_rgb(Window(0, 0, 32, 32))
            with rasterio.open(img) as raw:
                ref = raw.read(window=Window(0, 0, 32, 32))
            if raw.count >= 3:
                assert (win[..., 0] == ref[0]).all(), img
        seen += 1
    assert seen >= 5


def test_concurrent_window_reads_match_serial(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000, size=(3, 256, 256), dtype=np.uint16)
    path = write_raster(tmp_path / "c.tif", data, tiled=True, blockxsize=64, blockysize=64)
    windows = [Window(c, r, 64, 64) for r in range(0, 256, 64) for c in range(0, 256, 64)]
    with open_scene(path) as scene, ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda w: scene.read_rgb(w)[0], windows))
    with open_scene(path) as scene:
        serial = [scene.read_rgb(w)[0] for w in windows]
    assert all((a == b).all() for a, b in zip(parallel, serial, strict=True))
