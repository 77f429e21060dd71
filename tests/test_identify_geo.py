"""Synthetic georeferenced scenes: a rectangle of known ground size and true heading is drawn into
a raster (UTM north-up far from the central meridian, UTM with a rotated transform, EPSG:4326),
fitted with OpenCV minAreaRect on the drawn mask, and measured: within 1 px and 1 degree."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from pyproj import Geod, Transformer
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely.geometry import Polygon
from skimage.measure import find_contours

from sitewatch.identify import identify_detections
from sitewatch.identify.measurement import BoxFit, box_fit, measure_box
from sitewatch.imagery.georef import Georef
from sitewatch.types import Detection, OrientedBox

GEOD = Geod(ellps="WGS84")
LON, LAT = 5.6, 60.0  # UTM zone 31 (central meridian 3 E): grid convergence ~2.25 degrees
LENGTH_M, WIDTH_M = 40.0, 12.0
SIZE = 400
BARE_FIT = BoxFit((2.0, 2.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))


def _ground_corners(heading_deg: float) -> list[tuple[float, float]]:
    """Rectangle corners (lon, lat) centred on (LON, LAT), length axis at ``heading_deg`` true."""
    out = []
    for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
        lon, lat, _ = GEOD.fwd(LON, LAT, heading_deg if a > 0 else heading_deg + 180.0, LENGTH_M / 2)
        lon, lat, _ = GEOD.fwd(lon, lat, heading_deg + 90.0 if b > 0 else heading_deg - 90.0, WIDTH_M / 2)
        out.append((float(lon), float(lat)))
    return out


def _draw_and_fit(corners_lonlat, crs: str, transform: Affine) -> OrientedBox:
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    poly = Polygon([to_crs.transform(lon, lat) for lon, lat in corners_lonlat])
    mask = rasterize([(poly, 1)], out_shape=(SIZE, SIZE), transform=transform, dtype="uint8")
    assert mask.sum() > 100
    # Sub-pixel outline of the drawn mask (half-way between inside and outside pixel centres).
    [contour] = find_contours(np.pad(mask, 1).astype(float), 0.5)
    pts = np.stack([contour[:, 1] - 1 + 0.5, contour[:, 0] - 1 + 0.5], axis=1).astype(np.float32)
    return OrientedBox.from_corners(cv2.boxPoints(cv2.minAreaRect(pts)))


def _utm_north_up() -> tuple[str, Affine, float]:
    e, n = Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True).transform(LON, LAT)
    return "EPSG:32631", Affine(0.5, 0, e - 100, 0, -0.5, n + 100), 0.5


def _utm_rotated() -> tuple[str, Affine, float]:
    e, n = Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True).transform(LON, LAT)
    # Rotate the pixel grid 25 degrees about the scene centre (image-up is no longer grid north).
    t = Affine.translation(e, n) * Affine.rotation(25.0) * Affine.scale(0.5, -0.5) * Affine.translation(-SIZE / 2, -SIZE / 2)
    return "EPSG:32631", t, 0.5


def _geographic() -> tuple[str, Affine, float]:
    dlat = 0.5 / 111_412.0  # ~0.5 m at 60 N
    dlon = 0.5 / (111_412.0 * math.cos(math.radians(LAT)) * 1.0017)
    return "EPSG:4326", Affine(dlon, 0, LON - dlon * SIZE / 2, 0, -dlat, LAT + dlat * SIZE / 2), 0.5


@pytest.mark.parametrize("scene", [_utm_north_up, _utm_rotated, _geographic], ids=["utm", "utm-rotated", "epsg4326"])
@pytest.mark.parametrize("heading", [0.0, 35.0, 121.0])
def test_drawn_rectangle_measured_within_one_pixel_and_one_degree(scene, heading: float) -> None:
    crs, transform, gsd = scene()
    box = _draw_and_fit(_ground_corners(heading), crs, transform)
    # The geometry is tested bare: a box-fit model with no bias and no relative error.
    m = measure_box(box, "ship", gsd_m=gsd, georef=Georef.make(transform, crs), fit=BARE_FIT)
    assert abs(m.length_m - LENGTH_M) <= gsd, m
    assert abs(m.width_m - WIDTH_M) <= gsd, m
    diff = (m.heading_deg - heading + 90.0) % 180.0 - 90.0
    assert abs(diff) <= 1.0, m
    # Through identify_detections the same box gets the ship box-fit bias divided out.
    [out] = identify_detections([Detection(box, "ship", 0.9)], gsd_m=gsd, crs=crs, transform=transform)
    bias = box_fit("ship").bias_rel
    assert out.measurement.length_m == pytest.approx(m.length_m / (1 + bias[0]), abs=2e-3)
    assert out.measurement.width_m == pytest.approx(m.width_m / (1 + bias[1]), abs=2e-3)
    assert out.measurement.heading_deg == pytest.approx(m.heading_deg, abs=1e-6)
    assert m.heading_sigma_deg is not None and m.heading_sigma_deg < 5.0


def test_grid_convergence_matters_here() -> None:
    """On the north-up UTM scene image-up is grid north, ~2.25 degrees off true north: ignoring it fails."""
    crs, transform, _ = _utm_north_up()
    north = Georef.make(transform, crs).true_north_deg(SIZE / 2, SIZE / 2)
    convergence = (LON - 3.0) * math.sin(math.radians(LAT))
    assert (north - 360.0 if north > 180 else north) == pytest.approx(-convergence, abs=0.05)
    box = _draw_and_fit(_ground_corners(35.0), crs, transform)
    assert abs(box.heading_deg - 35.0) > 1.5  # the pixel-frame heading alone would be wrong


def test_bad_crs_is_a_georeference_error() -> None:
    from sitewatch.errors import GeoreferenceError

    det = Detection(OrientedBox.make(10, 10, 20, 5, 0), "ship", 0.9)
    with pytest.raises(GeoreferenceError, match="cannot use CRS"):
        identify_detections([det], gsd_m=0.5, crs="EPSG:999999", transform=(0.5, 0, 0, 0, -0.5, 0))
