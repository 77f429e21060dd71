"""Cut a scene (or a window of it) into overlapping model tiles, at one or more scales.

Frames: a :class:`Tile` has a ``window`` in *scene* pixels and an ``out_shape`` in *model*
pixels (the window resampled to the model's working scale). ``core`` is the part of the scene
the tile is responsible for: the cores of one grid partition the region, each boundary lying in
the middle of the overlap between two neighbouring tiles. A detection is kept from a tile only
when its centre lies in that tile's core (see :mod:`sitewatch.detect.merge`), so an object no
larger than the overlap is reported by the one tile that sees it whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

#: Model inputs must be multiples of this many pixels (5 stride-2 stages).
INPUT_MULTIPLE = 32

#: Inner tile starts are multiples of this many scene pixels.
_ALIGN = 16


@dataclass(frozen=True, slots=True)
class Tile:
    """One model input.

    Attributes:
        window: scene-pixel window read for this tile (may reach past the scene edge: padding).
        out_shape: ``(rows, cols)`` of the model input, model pixels.
        core: ``(xmin, ymin, xmax, ymax)`` scene pixels this tile answers for (half-open,
            infinite on the outer sides of the region).
        scale_x, scale_y: model pixels per scene pixel along x and y (equal up to rounding).
        min_length: boxes from this tile shorter than this (scene pixels) are dropped: a pass at a
            reduced scale answers only for the objects too large for the base pass.
    """

    window: Window
    out_shape: tuple[int, int]
    core: tuple[float, float, float, float]
    scale_x: float
    scale_y: float
    min_length: float = 0.0

    @property
    def scale(self) -> float:
        """Mean model pixels per scene pixel (for box sides)."""
        return (self.scale_x + self.scale_y) / 2.0

    def to_scene(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model-pixel coordinates of this tile → scene pixels."""
        return self.window.col_off + x / self.scale_x, self.window.row_off + y / self.scale_y


def _ceil_to(n: float, multiple: int) -> int:
    return max(multiple, int(math.ceil(n / multiple)) * multiple)


def _axis(
    start: int, length: int, tile_px: int, overlap_px: int, scale: float, fixed: bool
) -> list[tuple[int, int, int, float, float]]:
    """Tiles along one axis: ``(window start, window length, model length, core lo, core hi)``, scene px."""
    win = int(round(tile_px / scale))
    if length <= win:
        model = tile_px if fixed else _ceil_to(length * scale, INPUT_MULTIPLE)
        return [(start, int(round(model / scale)), model, -math.inf, math.inf)]
    # Even spacing; inner starts snapped to multiples of _ALIGN scene pixels (a stable output
    # grid, aligned reads); one more tile whenever snapping would shrink an overlap too much.
    overlap = int(round(overlap_px / scale))
    n = int(math.ceil((length - win) / max(1, win - overlap))) + 1
    while True:
        starts = start + np.linspace(0, length - win, n)
        if overlap and n > 2:
            starts[1:-1] = np.round(starts[1:-1] / _ALIGN) * _ALIGN
        starts = starts.astype(int)
        if n >= length or (starts[:-1] + win - starts[1:]).min() >= overlap:
            break
        n += 1
    bounds = [-math.inf] + [(starts[i] + win + starts[i + 1]) / 2.0 for i in range(n - 1)] + [math.inf]
    return [(int(s), win, tile_px, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def plan_tiles(
    region: Window,
    *,
    scale: float = 1.0,
    tile_px: int = 512,
    overlap_px: int = 128,
    fixed_shape: tuple[int, int] | None = None,
) -> list[Tile]:
    """Plan the tiles that cover ``region`` at one scale.

    Args:
        region: scene-pixel window to cover (already clipped to the scene).
        scale: model pixels per scene pixel (< 1 reads the scene downsampled).
        tile_px: tile side, model pixels (a multiple of 32).
        overlap_px: least overlap between neighbouring tiles, model pixels.
        fixed_shape: ``(rows, cols)`` when the model only accepts one input size; regions
            smaller than a tile are then padded to it instead of to the next multiple of 32.

    Returns:
        Tiles in row-major order.

    Raises:
        ValueError: bad tile/overlap sizes.
    """
    if fixed_shape is not None:
        if fixed_shape[0] != fixed_shape[1]:
            raise ValueError(f"non-square fixed model input {fixed_shape} is not supported")
        tile_px = fixed_shape[0]
    if tile_px % INPUT_MULTIPLE or tile_px <= 0:
        raise ValueError(f"tile size must be a positive multiple of {INPUT_MULTIPLE}, got {tile_px}")
    if not 0 <= overlap_px < tile_px:
        raise ValueError(f"overlap must be in [0, tile size), got {overlap_px} for tile {tile_px}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    fixed = fixed_shape is not None
    col0, row0 = int(region.col_off), int(region.row_off)
    cols = _axis(col0, int(region.width), tile_px, overlap_px, scale, fixed)
    rows = _axis(row0, int(region.height), tile_px, overlap_px, scale, fixed)
    tiles = []
    for r_start, r_len, r_model, y_lo, y_hi in rows:
        for c_start, c_len, c_model, x_lo, x_hi in cols:
            tiles.append(
                Tile(
                    window=Window(c_start, r_start, c_len, r_len),
                    out_shape=(r_model, c_model),
                    core=(x_lo, y_lo, x_hi, y_hi),
                    scale_x=c_model / c_len,
                    scale_y=r_model / r_len,
                )
            )
    return tiles
