"""Georeferencing: one pixel <-> ground mapping (:class:`Georef`: pixels <-> WGS84, true north),
scene footprints, AOI windows and coverage, GSD.

Frames: pixel coordinates are (x = column, y = row) with the origin at the top-left corner of the
top-left pixel (rasterio convention, as in :mod:`sitewatch.types`); geographic coordinates are
WGS84 (EPSG:4326) longitude/latitude in degrees; distances are metres.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from sitewatch.errors import CoverageError, GeoreferenceError
from sitewatch.imagery.base import Scene
from sitewatch.types import OrientedBox

WGS84 = CRS.from_epsg(4326)
_GEOD = Geod(ellps="WGS84")

#: Projected CRSs whose point scale differs from 1 by more than this (Web Mercator away from the
#: equator) have their GSD corrected to ground metres; UTM-like grids keep their nominal pixel size.
_SCALE_TOLERANCE = 0.01
#: Latitude step, degrees, over which true north is found (:meth:`Georef.true_north_deg`).
_NORTH_STEP_DEG = 0.001


@lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(ProjCRS.from_wkt(src_wkt), ProjCRS.from_wkt(dst_wkt), always_xy=True)


def _to_wgs84(crs: CRS) -> Transformer:
    return _transformer(crs.to_wkt(), WGS84.to_wkt())


def _from_wgs84(crs: CRS) -> Transformer:
    return _transformer(WGS84.to_wkt(), crs.to_wkt())


@dataclass(frozen=True, slots=True)
class Georef:
    """The pixel <-> ground mapping of an image: its affine pixel -> CRS transform and its CRS.

    Frames as in the module docstring: pixels (x = column, y = row, top-left corner origin), WGS84
    longitude/latitude in degrees, directions in degrees clockwise from image-up.
    """

    transform: Affine
    crs: CRS

    @classmethod
    def make(cls, transform: Affine | Sequence[float], crs: Any) -> Georef:
        """From an ``Affine`` (or its 6 GDAL-order numbers a, b, c, d, e, f) and any CRS input
        (an EPSG string, WKT, PROJ string, a rasterio or pyproj CRS).

        Raises:
            GeoreferenceError: the CRS cannot be read or mapped to WGS84, or the transform is singular.
        """
        try:
            aff = transform if isinstance(transform, Affine) else Affine(*list(transform)[:6])
            if abs(aff.determinant) < 1e-30:
                raise ValueError("singular transform")
            src = CRS.from_user_input(crs)
            _to_wgs84(src)
        except Exception as e:  # rasterio, pyproj and affine raise many types
            raise GeoreferenceError(f"cannot use CRS {crs!r} with transform {transform!r}: {e}") from e
        return cls(aff, src)

    @classmethod
    def of(cls, scene: Scene) -> Georef:
        """The georeference of a scene.

        Raises:
            GeoreferenceError: the scene is not georeferenced (pixel space only).
        """
        if scene.crs is None or scene.transform is None:
            raise GeoreferenceError(f"{scene.path}: scene is not georeferenced (pixel space only)")
        return cls(scene.transform, scene.crs)

    def lonlat(
        self, xs: np.ndarray | list[float] | float, ys: np.ndarray | list[float] | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates to WGS84 ``(lons, lats)`` arrays, degrees."""
        xs, ys = np.atleast_1d(np.asarray(xs, dtype=float)), np.atleast_1d(np.asarray(ys, dtype=float))
        # Affine applies to arrays of coordinates too; its type hints cover scalars only
        mx, my = self.transform * (xs, ys)  # type: ignore[operator]
        lons, lats = _to_wgs84(self.crs).transform(mx, my)
        return np.asarray(lons), np.asarray(lats)

    def pixels(
        self, lons: np.ndarray | list[float] | float, lats: np.ndarray | list[float] | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 longitudes/latitudes (degrees) to pixel ``(xs, ys)`` arrays (inverse of :meth:`lonlat`)."""
        lons, lats = (
            np.atleast_1d(np.asarray(lons, dtype=float)),
            np.atleast_1d(np.asarray(lats, dtype=float)),
        )
        mx, my = _from_wgs84(self.crs).transform(lons, lats)
        xs, ys = ~self.transform * (np.asarray(mx), np.asarray(my))
        return np.asarray(xs), np.asarray(ys)

    def true_north_deg(self, x: float, y: float) -> float:
        """Direction of true north at pixel ``(x, y)``, degrees clockwise from image-up in [0, 360).

        Found by moving 0.001 degree of latitude (about 111 m) north and mapping that point back to
        pixels; a step that long keeps the round-trip error of a datum shift out of the angle. Zero on
        a north-up UTM image at the central meridian; the grid convergence elsewhere. NaN where the
        point cannot be mapped back.
        """
        lon, lat = self.lonlat(x, y)
        px, py = self.pixels(lon, np.minimum(lat + _NORTH_STEP_DEG, 89.999))
        dx, dy = float(px[0]) - x, float(py[0]) - y
        if not (math.isfinite(dx) and math.isfinite(dy)) or math.hypot(dx, dy) == 0:
            return math.nan
        return math.degrees(math.atan2(dx, -dy)) % 360.0


def _georef(scene_or_transform: Scene | Affine, crs: CRS | str | None) -> Georef:
    if isinstance(scene_or_transform, Scene):
        return Georef.of(scene_or_transform)
    if crs is None:
        raise GeoreferenceError("a CRS is needed with a bare transform")
    return Georef(scene_or_transform, CRS.from_user_input(crs))


def pixel_to_lonlat(
    scene_or_transform: Scene | Affine,
    xs: np.ndarray | list[float] | float,
    ys: np.ndarray | list[float] | float,
    crs: CRS | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel coordinates to WGS84 longitude/latitude (:meth:`Georef.lonlat`).

    Args:
        scene_or_transform: a georeferenced scene, or an affine pixel -> CRS transform (then ``crs`` is
            needed).
        xs, ys: pixel columns and rows (top-left corner origin).
        crs: the CRS of ``transform`` when a bare transform is given.

    Returns:
        ``(lons, lats)`` arrays in degrees.

    Raises:
        GeoreferenceError: the scene has no georeference.
    """
    return _georef(scene_or_transform, crs).lonlat(xs, ys)


def lonlat_to_pixel(
    scene_or_transform: Scene | Affine,
    lons: np.ndarray | list[float] | float,
    lats: np.ndarray | list[float] | float,
    crs: CRS | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Map WGS84 longitude/latitude (degrees) to pixel ``(xs, ys)``; the inverse of
    :func:`pixel_to_lonlat`."""
    return _georef(scene_or_transform, crs).pixels(lons, lats)


def box_corners_lonlat(scene: Scene, boxes: Sequence[OrientedBox]) -> np.ndarray:
    """WGS84 ``(lon, lat)`` of the corners of oriented boxes given in the scene's pixels, shape (n, 4, 2).

    Raises:
        GeoreferenceError: the scene has no georeference.
    """
    if not boxes:
        return np.zeros((0, 4, 2))
    corners = np.stack([b.corners() for b in boxes])
    lons, lats = Georef.of(scene).lonlat(corners[..., 0].ravel(), corners[..., 1].ravel())
    return np.stack([lons, lats], axis=1).reshape(-1, 4, 2)


def polygon_to_pixels(scene: Scene, polygon_wgs84: Polygon, *, max_segment_deg: float = 0.001) -> Polygon:
    """A WGS84 polygon in the scene's pixel frame (edges densified so projections stay faithful).

    Raises:
        GeoreferenceError: the scene has no georeference.
    """
    dense = shapely.segmentize(polygon_wgs84, max_segment_deg)

    def _tx(coords: np.ndarray) -> np.ndarray:
        xs, ys = lonlat_to_pixel(scene, coords[:, 0], coords[:, 1])
        return np.column_stack([xs, ys])

    return shapely.transform(dense, _tx)


def pixels_to_polygon(scene: Scene, polygon_px: Polygon, *, max_segment_px: float = 64.0) -> Polygon:
    """A pixel-frame polygon as a WGS84 lon/lat polygon (edges densified)."""
    dense = shapely.segmentize(polygon_px, max_segment_px)

    def _tx(coords: np.ndarray) -> np.ndarray:
        lons, lats = pixel_to_lonlat(scene, coords[:, 0], coords[:, 1])
        return np.column_stack([lons, lats])

    return shapely.transform(dense, _tx)


def footprint_wgs84(scene: Scene) -> Polygon:
    """The ground outline of the whole image as a WGS84 lon/lat polygon.

    Raises:
        GeoreferenceError: the scene has no georeference.
    """
    frame = box(0, 0, scene.width, scene.height)
    return pixels_to_polygon(scene, frame, max_segment_px=max(scene.width, scene.height) / 16.0)


def window_for_polygon(scene: Scene, polygon_wgs84: Polygon, pad_px: int = 0) -> Window:
    """The pixel window of the scene that holds a WGS84 polygon (e.g. a site AOI), clipped to the image.

    Args:
        scene: a georeferenced scene.
        polygon_wgs84: lon/lat polygon.
        pad_px: pixels added on every side before clipping.

    Returns:
        An integer-aligned :class:`~rasterio.windows.Window` inside the image.

    Raises:
        GeoreferenceError: the scene has no georeference.
        CoverageError: the polygon lies entirely outside the image.
    """
    px = polygon_to_pixels(scene, polygon_wgs84)
    x0, y0, x1, y1 = px.bounds
    x0, y0 = max(math.floor(x0) - pad_px, 0), max(math.floor(y0) - pad_px, 0)
    x1, y1 = min(math.ceil(x1) + pad_px, scene.width), min(math.ceil(y1) + pad_px, scene.height)
    if x1 <= x0 or y1 <= y0:
        raise CoverageError(f"{scene.path}: the area does not intersect the image")
    return Window(x0, y0, x1 - x0, y1 - y0)


def coverage(scene: Scene, aoi_wgs84: Polygon) -> float | None:
    """Fraction (0..1) of an AOI's area that the image covers.

    Pixel-space scenes (screenshots without an anchor) cannot be placed on the ground: their
    coverage is unknown and this returns None; callers should record it as unknown, not as 0.

    Args:
        scene: the scene.
        aoi_wgs84: lon/lat polygon.

    Returns:
        Area fraction in [0, 1], or None for a pixel-space scene.
    """
    if not scene.georeferenced:
        return None
    px = polygon_to_pixels(scene, aoi_wgs84)
    if px.area <= 0:
        return 0.0
    inside = px.intersection(box(0, 0, scene.width, scene.height)).area
    return float(min(max(inside / px.area, 0.0), 1.0))


def gsd_from_transform(crs: CRS | None, transform: Affine | None, width: int, height: int) -> float | None:
    """Ground sample distance at the image centre, metres per pixel.

    Geographic CRSs (degrees) use geodesic distances on the WGS84 ellipsoid. Projected CRSs use the
    pixel size in CRS units times the unit's metre factor, divided by the point scale of the
    projection where that departs from 1 by more than 1 % (Web Mercator away from the equator).

    Returns:
        Metres per pixel (geometric mean of the x and y pixel sizes), or None without CRS/transform.
    """
    if crs is None or transform is None or transform.is_identity:
        return None
    cx, cy = width / 2.0, height / 2.0
    if crs.is_geographic:
        pts = np.array([[cx, cy], [cx + 1, cy], [cx, cy + 1]], dtype=float)
        lons, lats = pixel_to_lonlat(transform, pts[:, 0], pts[:, 1], crs=crs)
        _, _, dx = _GEOD.inv(lons[0], lats[0], lons[1], lats[1])
        _, _, dy = _GEOD.inv(lons[0], lats[0], lons[2], lats[2])
        return float(math.sqrt(dx * dy))
    sx = math.hypot(transform.a, transform.d)
    sy = math.hypot(transform.b, transform.e)
    try:
        factor = float(crs.linear_units_factor[1])
    except Exception:  # noqa: BLE001 - CRSs without declared units are taken as metres
        factor = 1.0
    gsd = math.sqrt(sx * sy) * factor
    try:
        lon, lat = pixel_to_lonlat(transform, [cx], [cy], crs=crs)
        f = ProjCRS.from_wkt(crs.to_wkt())
        from pyproj import Proj

        fac = Proj(f).get_factors(float(lon[0]), float(lat[0]))
        k = math.sqrt(fac.meridional_scale * fac.parallel_scale)
        if math.isfinite(k) and k > 0 and abs(k - 1.0) > _SCALE_TOLERANCE:
            gsd /= k
    except Exception:  # noqa: BLE001 - unknown projections keep the nominal size
        pass
    return float(gsd)


def gsd_of(scene: Scene) -> float | None:
    """The scene's GSD in metres per pixel: as given, else from its georeference, else None."""
    if scene.gsd_m is not None:
        return float(scene.gsd_m)
    return gsd_from_transform(scene.crs, scene.transform, scene.width, scene.height)


def local_crs(lat: float, lon: float) -> CRS:
    """An azimuthal equidistant CRS centred on (lat, lon): metres, grid north = true north at the centre."""
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat:.9f} +lon_0={lon:.9f} +datum=WGS84 +units=m +no_defs")


def transform_from_anchor(
    width: int, height: int, *, center: tuple[float, float], gsd_m: float, rotation_deg: float = 0.0
) -> tuple[CRS, Affine]:
    """Georeference an image from its centre point, GSD and rotation.

    Args:
        width, height: image size, pixels.
        center: ``(lat, lon)`` of the image centre, degrees WGS84.
        gsd_m: metres per pixel.
        rotation_deg: bearing of image-up, degrees clockwise from true north (0 = north-up; 90 = the
            top of the image faces east).

    Returns:
        ``(crs, transform)``: a local azimuthal equidistant CRS centred on ``center`` and the affine
        pixel -> CRS transform.

    Raises:
        GeoreferenceError: bad latitude/longitude or GSD.
    """
    lat, lon = center
    if not math.isfinite(rotation_deg):
        raise GeoreferenceError(f"rotation {rotation_deg} is not a number of degrees")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise GeoreferenceError(f"anchor centre ({lat}, {lon}) is not a valid latitude, longitude")
    if not gsd_m or not math.isfinite(gsd_m) or gsd_m <= 0:
        raise GeoreferenceError("an anchor needs a positive GSD (metres per pixel)")
    t = math.radians(rotation_deg)
    a, b = gsd_m * math.cos(t), -gsd_m * math.sin(t)
    d, e = -gsd_m * math.sin(t), -gsd_m * math.cos(t)
    c = -(a * width / 2.0 + b * height / 2.0)
    f = -(d * width / 2.0 + e * height / 2.0)
    return local_crs(lat, lon), Affine(a, b, c, d, e, f)
