"""Which ground a scene actually observed: valid pixels, not the image outline.

A pixel observes the ground when the file marks it valid (no nodata value, internal mask or alpha
says otherwise) *and* it lies in a block that holds some image content: blocks that are all black
(zero fill) or all saturated white carry no information about what stands there. A cloud-covered,
blank or masked pass therefore counts as *not observed*, never as *empty*.

Frames: masks are on a decimated grid of the scene's pixels (``grid_to_scene`` maps grid pixels to
scene pixels); observed areas are WGS84 lon/lat polygons; coverages are fractions 0..1 of an area.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes
from rasterio.windows import Window
from shapely.geometry import Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from sitewatch.imagery import georef
from sitewatch.imagery.base import Scene

log = logging.getLogger(__name__)

#: Longest side, in grid pixels, of the decimated read that measures validity.
VALIDITY_MAX_SIDE = 1024

#: Side of the blocks tested for blank content, grid pixels.
BLANK_BLOCK_PX = 8

#: A block whose every pixel is at most this grey level in every band is zero fill (0-255).
BLANK_DARK_MAX = 2

#: A block whose every pixel is at least this grey level in every band is saturated (0-255).
BLANK_BRIGHT_MIN = 253


@dataclass(frozen=True, slots=True)
class Observed:
    """What a scene observed of a site.

    Attributes:
        coverage: fraction 0..1 of the site's AOI (pixel-space scenes: of the image) seen by valid pixels.
        area_wkt: the observed part of the AOI as a WGS84 lon/lat (multi)polygon WKT; None for
            pixel-space scenes (which cannot be placed on the ground).
        zones: zone name → fraction 0..1 of that zone seen by valid pixels (georeferenced scenes).
    """

    coverage: float
    area_wkt: str | None = None
    zones: dict[str, float] = field(default_factory=dict)


def observed_mask(rgb: np.ndarray, valid: np.ndarray, block_px: int = BLANK_BLOCK_PX) -> np.ndarray:
    """Valid pixels outside blank (all-black or all-saturated) blocks.

    Args:
        rgb: uint8 (rows, cols, 3).
        valid: bool (rows, cols), the file's own validity (nodata, mask, alpha).
        block_px: block side, pixels.

    Returns:
        bool (rows, cols): True where the ground was observed.
    """
    rows, cols = valid.shape
    if rows == 0 or cols == 0:
        return valid.copy()
    pr, pc = -rows % block_px, -cols % block_px
    lo = np.pad(rgb.max(axis=2), ((0, pr), (0, pc)), mode="edge")
    hi = np.pad(rgb.min(axis=2), ((0, pr), (0, pc)), mode="edge")
    br, bc = lo.shape[0] // block_px, lo.shape[1] // block_px
    dark = lo.reshape(br, block_px, bc, block_px).max(axis=(1, 3)) <= BLANK_DARK_MAX
    bright = hi.reshape(br, block_px, bc, block_px).min(axis=(1, 3)) >= BLANK_BRIGHT_MIN
    blank = np.repeat(np.repeat(dark | bright, block_px, axis=0), block_px, axis=1)[:rows, :cols]
    return valid & ~blank


def _grid(window: Window, max_side: int) -> tuple[tuple[int, int], Affine]:
    """Decimated read shape of a window and the grid → scene pixel transform."""
    w, h = int(window.width), int(window.height)
    f = max(w, h) / max_side
    f = max(f, 1.0)
    rows, cols = max(1, round(h / f)), max(1, round(w / f))
    to_scene = Affine.translation(window.col_off, window.row_off) * Affine.scale(w / cols, h / rows)
    return (rows, cols), to_scene


def read_observed(
    scene: Scene, window: Window | None = None, max_side: int = VALIDITY_MAX_SIDE
) -> tuple[np.ndarray, Affine]:
    """The observed-pixel mask of a window, read decimated (overviews are used where they exist).

    Returns:
        ``(mask, grid_to_scene)``: bool mask on the decimated grid and the affine from grid pixels
        to scene pixels.

    Raises:
        SceneError: the pixels cannot be read.
    """
    window = window or Window(0, 0, scene.width, scene.height)
    out_shape, to_scene = _grid(window, max_side)
    rgb, valid = scene.read_rgb(window, out_shape=out_shape)
    return observed_mask(rgb, valid), to_scene


def _fraction(mask: np.ndarray, poly_grid: BaseGeometry) -> float:
    """Share of a polygon (grid pixels) covered by True pixels of ``mask``."""
    if poly_grid.is_empty or poly_grid.area <= 0:
        return 0.0
    inside = rasterize(
        [(poly_grid, 1)], out_shape=mask.shape, fill=0, dtype="uint8", all_touched=False
    ).astype(bool)
    # Denominator: the polygon's whole area (parts outside the image count as not observed).
    return float(min(max((mask & inside).sum() / poly_grid.area, 0.0), 1.0))


def _to_grid(poly_scene: BaseGeometry, to_scene: Affine) -> BaseGeometry:
    inv = ~to_scene
    return shapely.transform(poly_scene, lambda c: np.column_stack(inv * (c[:, 0], c[:, 1])))


def observe(scene: Scene, aoi: Polygon | None = None, zones: dict[str, Polygon] | None = None,
            *, window: Window | None = None, max_side: int = VALIDITY_MAX_SIDE) -> Observed:  # fmt: skip
    """Measure what a scene observed of an AOI (and its zones) from its valid pixels.

    Args:
        scene: the scene.
        aoi: the site's AOI, WGS84 lon/lat; None (or a pixel-space scene): the whole image.
        zones: zone name → WGS84 polygon.
        window: the scene pixels to read (default: the whole image).
        max_side: longest side of the decimated read, pixels.

    Returns:
        The :class:`Observed` coverage, observed area and per-zone coverage.

    Raises:
        SceneError: the pixels cannot be read.
    """
    mask, to_scene = read_observed(scene, window, max_side)
    if aoi is None or not scene.georeferenced:
        return Observed(coverage=float(mask.mean()) if mask.size else 0.0)
    aoi_grid = _to_grid(georef.polygon_to_pixels(scene, aoi), to_scene)
    cover = _fraction(mask, aoi_grid)
    zone_cover = {name: round(_fraction(mask, _to_grid(georef.polygon_to_pixels(scene, z), to_scene)), 4)
                  for name, z in (zones or {}).items() if z is not None and not z.is_empty}  # fmt: skip
    area = observed_polygon(scene, mask, to_scene).intersection(aoi)
    return Observed(
        coverage=round(cover, 4), area_wkt=shapely.set_precision(area, 1e-7).wkt, zones=zone_cover
    )


def observed_polygon(scene: Scene, mask: np.ndarray, to_scene: Affine) -> BaseGeometry:
    """The True pixels of an observed mask as a WGS84 lon/lat (multi)polygon (empty when none)."""
    if not mask.any():
        return Polygon()
    if mask.all():
        rows, cols = mask.shape
        return georef.pixels_to_polygon(
            scene,
            shapely.transform(
                box(0, 0, cols, rows), lambda c: np.column_stack(to_scene * (c[:, 0], c[:, 1]))
            ),
        )
    polys = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=to_scene) if v == 1]
    merged = shapely.union_all(polys)
    # Simplify by half a grid pixel (scene pixels): blocky outlines lose nothing the mask knows.
    tol = 0.5 * math.hypot(to_scene.a, to_scene.e)
    merged = merged.simplify(tol, preserve_topology=True)
    seg = max(scene.width, scene.height) / 16.0
    return shapely.make_valid(georef.pixels_to_polygon(scene, merged, max_segment_px=seg))


def joint_area(*areas_wkt: str | None) -> BaseGeometry | None:
    """The ground observed in every one of the given areas (WKT), or None when any is unknown."""
    if any(a is None for a in areas_wkt):
        return None
    geoms = [shapely.make_valid(shapely.from_wkt(a)) for a in areas_wkt]
    out = geoms[0]
    for g in geoms[1:]:
        out = out.intersection(g)
    return out
