"""Bring two passes onto one working grid: GSD/footprint checks, reading, reprojection, zones."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import reproject
from rasterio.warp import transform as warp_transform
from shapely import wkt as shapely_wkt
from shapely.ops import transform as shapely_transform

from sitewatch.compare.registration import Registration
from sitewatch.compare.settings import CompareSettings
from sitewatch.errors import CompareError
from sitewatch.types import Pass

log = logging.getLogger(__name__)


def _name(p: Pass) -> str:
    return f"pass {p.id}" if p.id is not None else p.scene_path


def check_compatible(a: Pass, b: Pass, s: CompareSettings) -> None:
    """Refuse passes of too different GSDs or with disjoint footprints.

    Raises:
        CompareError: with the two GSDs or footprints named.
    """
    if a.gsd_m and b.gsd_m:
        ratio = max(a.gsd_m, b.gsd_m) / min(a.gsd_m, b.gsd_m)
        if ratio > s.max_gsd_ratio:
            raise CompareError(
                f"GSDs too different to compare: {_name(a)} {a.gsd_m:.2f} m vs {_name(b)} {b.gsd_m:.2f} m "
                f"({ratio:.1f}x, limit {s.max_gsd_ratio:g}x)"
            )
    if a.footprint_wkt and b.footprint_wkt:
        fa, fb = shapely_wkt.loads(a.footprint_wkt), shapely_wkt.loads(b.footprint_wkt)
        inter = fa.intersection(fb).area
        if inter <= 0 or inter < s.min_overlap * min(fa.area, fb.area):
            pct = 100.0 * inter / min(fa.area, fb.area) if min(fa.area, fb.area) > 0 else 0.0
            raise CompareError(
                f"passes do not overlap: footprints of {_name(a)} and {_name(b)} share {pct:.0f} % "
                f"(minimum {100 * s.min_overlap:.0f} %)"
            )


def observed_ground(a: Pass, b: Pass, site: Any):  # noqa: ANN201
    """What each pass observed, from the stored valid-pixel coverage and observed areas.

    Returns:
        ``(observed, ground_a, ground_b)``: ``{"a", "b", "both"}`` fractions 0..1 of the site (None
        where unknown; "both" needs both observed areas and a site AOI), and lookups telling
        whether points in A's scene pixels lie on ground A / B observed (None without observed
        areas or georeference).
    """
    import shapely

    from sitewatch.imagery.georef import pixel_to_lonlat
    from sitewatch.imagery.validity import joint_area

    observed: dict[str, float | None] = {"a": a.observed_coverage, "b": b.observed_coverage, "both": None}
    aoi = getattr(site, "aoi", None)
    joint = joint_area(a.observed_wkt, b.observed_wkt)
    if joint is not None and aoi is not None and aoi.area > 0:
        observed["both"] = round(float(min(joint.area / aoi.area, 1.0)), 4)
    ta, ca = _affine(a.transform), _crs(a.crs)
    if ta is None or ca is None:
        return observed, None, None

    def lookup(wkt: str | None):  # noqa: ANN202
        if wkt is None:
            return None
        area = shapely.make_valid(shapely_wkt.loads(wkt))
        shapely.prepare(area)

        def seen(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            lons, lats = pixel_to_lonlat(ta, xs, ys, crs=ca)
            return shapely.contains_xy(area, lons, lats)

        return seen

    return observed, lookup(a.observed_wkt), lookup(b.observed_wkt)


def _affine(t: tuple[float, ...] | None) -> Affine | None:
    return Affine(*t[:6]) if t else None


def _crs(c: str | None) -> CRS | None:
    return CRS.from_user_input(c) if c else None


def georef_registration(a: Pass, b: Pass, shape: tuple[int, int] | None = None) -> Registration | None:
    """A-scene → B-scene pixel affine from the passes' georeferences, or None when either lacks one."""
    ta, tb, ca, cb = _affine(a.transform), _affine(b.transform), _crs(a.crs), _crs(b.crs)
    if ta is None or tb is None or ca is None or cb is None:
        return None
    m = _fit_pixel_affine(ta, ca, tb, cb, shape or (1000, 1000))
    return Registration(
        (m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]),
        quality=0.5,
        method="georeference",
        error_px=2.0,
    )


def _fit_pixel_affine(ta: Affine, ca: CRS, tb: Affine, cb: CRS, shape: tuple[int, int]) -> np.ndarray:
    """Least-squares 3x3 affine from A pixels to B pixels over a grid of points on A."""
    h, w = shape
    gx, gy = np.meshgrid(np.linspace(0, w, 9), np.linspace(0, h, 9))
    xs, ys = gx.ravel(), gy.ravel()
    # Affine applies to arrays of coordinates too; its type hints cover scalars only
    mx, my = ta * (xs, ys)  # type: ignore[operator]
    if ca != cb:
        mx, my = (np.asarray(v) for v in warp_transform(ca, cb, mx, my))
    bx, by = ~tb * (np.asarray(mx), np.asarray(my))
    design = np.stack([xs, ys, np.ones_like(xs)], axis=1)
    coef_x, *_ = np.linalg.lstsq(design, np.asarray(bx), rcond=None)
    coef_y, *_ = np.linalg.lstsq(design, np.asarray(by), rcond=None)
    return np.vstack([coef_x, coef_y, [0.0, 0.0, 1.0]])


def _open(p: Pass) -> Any:
    from sitewatch.imagery import open_scene

    return open_scene(p.scene_path, gsd_m=p.gsd_m, force=True)  # the GSD the pass was stored with


def _read(scene: Any, scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    from sitewatch.imagery.validity import observed_mask

    h, w = max(int(round(scene.height * scale)), 1), max(int(round(scene.width * scale)), 1)
    rgb, valid = scene.read_rgb(None, out_shape=(h, w))
    # blank (all-black / saturated) blocks observe nothing, like nodata
    return rgb, observed_mask(rgb, valid), w / scene.width


def load_pair(a: Pass, b: Pass, site: Any, s: CompareSettings):  # noqa: ANN201
    """Read both passes onto A's working grid.

    Returns:
        ``(a_img, b_img, zones, b_to_scene)`` for :func:`~sitewatch.compare.comparison.compare_images`.

    Raises:
        SceneError: a scene cannot be read. CompareError: no overlap.
    """
    from sitewatch.compare.comparison import PassImage

    with _open(a) as sa, _open(b) as sb:
        gsd_a, gsd_b = a.gsd_m or sa.gsd_m, b.gsd_m or sb.gsd_m
        work_gsd = max(v for v in (s.working_gsd_m, gsd_a, gsd_b) if v) if gsd_a else None
        scale_a = (gsd_a / work_gsd) if work_gsd else 1.0
        scale_a = min(scale_a, s.max_working_px / max(sa.width, sa.height), 1.0)
        ga = gsd_a / scale_a if gsd_a else None
        scale_b = scale_a * (gsd_b / gsd_a) if gsd_a and gsd_b else scale_a
        rgb_a, valid_a, scale_a = _read(sa, scale_a)
        rgb_b, valid_b, scale_b = _read(sb, min(scale_b, 1.0))
    ta, tb, ca, cb = _affine(a.transform), _affine(b.transform), _crs(a.crs), _crs(b.crs)
    shape = rgb_a.shape[:2]
    if ta is not None and tb is not None and ca is not None and cb is not None:
        wa = ta * Affine.scale(1.0 / scale_a)
        wb = tb * Affine.scale(1.0 / scale_b)
        on_a = np.zeros((3, *shape), np.uint8)
        reproject(
            np.moveaxis(rgb_b, 2, 0),
            on_a,
            src_transform=wb,
            src_crs=cb,
            dst_transform=wa,
            dst_crs=ca,
            resampling=Resampling.bilinear,
        )
        valid_on_a = np.zeros(shape, np.uint8)
        reproject(
            valid_b.astype(np.uint8),
            valid_on_a,
            src_transform=wb,
            src_crs=cb,
            dst_transform=wa,
            dst_crs=ca,
            resampling=Resampling.nearest,
            dst_nodata=0,
        )
        # B-on-A grid pixels → B scene pixels (the grid is A's working grid).
        b_to_scene = _fit_pixel_affine(wa, ca, tb, cb, shape)
        b_img = PassImage(np.moveaxis(on_a, 0, 2).copy(), valid_on_a.astype(bool), scale_a, ga, ca, wa)
        a_img = PassImage(rgb_a, valid_a, scale_a, ga, ca, wa)
        zones = site_zones(site, ca, wa, shape)
    else:
        b_rgb = np.zeros((*shape, 3), np.uint8)
        b_valid = np.zeros(shape, bool)
        h, w = min(shape[0], rgb_b.shape[0]), min(shape[1], rgb_b.shape[1])
        b_rgb[:h, :w], b_valid[:h, :w] = rgb_b[:h, :w], valid_b[:h, :w]
        b_to_scene = np.diag([1.0 / scale_b, 1.0 / scale_b, 1.0])
        a_img = PassImage(rgb_a, valid_a, scale_a, ga)
        b_img = PassImage(b_rgb, b_valid, scale_a, ga)
        zones = None
    return a_img, b_img, zones, b_to_scene


def site_zones(
    site: Any, crs: CRS, transform: Affine, shape: tuple[int, int]
) -> dict[str, np.ndarray] | None:
    """Rasterise the site's AOI ("site") and zones (WGS84) onto a georeferenced grid, or None."""
    if site is None:
        return None
    from pyproj import Transformer

    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform
    out: dict[str, np.ndarray] = {}
    polys = {"site": getattr(site, "aoi", None), **dict(getattr(site, "zones", {}) or {})}
    for name, poly in polys.items():
        if poly is None or poly.is_empty:
            continue
        geom = shapely_transform(to_crs, poly)
        out[name] = rasterize(
            [(geom, 1)], out_shape=shape, transform=transform, fill=0, dtype="uint8"
        ).astype(bool)
    return out or None
