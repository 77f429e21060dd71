"""Which bands make RGB, and how non-8-bit pixels are stretched to 8 bits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from rasterio.enums import ColorInterp

from sitewatch.errors import SceneError

log = logging.getLogger(__name__)

#: Data types sitewatch can display (complex types are not imagery we can show).
SUPPORTED_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"})

#: Percentiles of the per-band contrast stretch for non-8-bit imagery.
STRETCH_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class BandPlan:
    """How to turn a raster's bands into RGB.

    Attributes:
        indexes: three 1-based band indexes read as R, G, B (repeated for grey).
        palette: band 1 is paletted; look colours up in ``colormap``.
        note: a human sentence when the choice was a guess (logged once), else None.
    """

    indexes: tuple[int, int, int]
    palette: bool = False
    note: str | None = None


def plan_bands(count: int, colorinterp: tuple[ColorInterp, ...], dtype: str, source: str) -> BandPlan:
    """Choose the RGB bands of a raster.

    1 band: grey (or palette) to RGB. 2 bands: grey + alpha. 3 bands: RGB. 4 bands: RGBA (alpha is
    a mask) or RGB + NIR (RGB taken by colour interpretation, else the first three). More bands:
    red/green/blue by colour interpretation, else the first three with a logged warning.

    Raises:
        SceneError: unsupported band count or data type.
    """
    if dtype not in SUPPORTED_DTYPES:
        raise SceneError(
            f"{source}: unsupported pixel type {dtype}; expected one of {', '.join(sorted(SUPPORTED_DTYPES))}"
        )
    if count < 1:
        raise SceneError(f"{source}: image has no bands")
    ci = list(colorinterp)
    if count == 1:
        return BandPlan((1, 1, 1), palette=ci[0] == ColorInterp.palette)
    if count == 2:
        if ci[1] == ColorInterp.alpha:
            return BandPlan((1, 1, 1))
        raise SceneError(
            f"{source}: unsupported band count 2 (not grey + alpha); expected 1, 3, 4 or more bands"
        )
    by_interp = {c: i + 1 for i, c in reversed(list(enumerate(ci)))}
    r, g, b = (by_interp.get(c) for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))
    if r and g and b:
        return BandPlan((r, g, b))
    note = None
    if count > 4 or (count == 4 and ci[3] != ColorInterp.alpha and ci[3] != ColorInterp.undefined):
        note = (
            f"{source}: {count} bands without red/green/blue colour interpretation; using bands 1, 2, 3 as "
            "RGB"
        )
        log.warning(note)
    return BandPlan((1, 2, 3), note=note)


def stretch_limits(samples: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band 2-98 % percentile limits from a decimated sample.

    Args:
        samples: array (bands, rows, cols) of a decimated read of the whole scene.
        valid: bool array (rows, cols), True where the pixel holds data.

    Returns:
        Array (bands, 2) of (low, high) limits; high > low always.
    """
    lims = np.zeros((samples.shape[0], 2), dtype=np.float64)
    for b in range(samples.shape[0]):
        vals = samples[b][valid & np.isfinite(samples[b])]
        if vals.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = (float(v) for v in np.percentile(vals, STRETCH_PERCENTILES))
        if hi <= lo:
            hi = lo + 1.0
        lims[b] = (lo, hi)
    return lims


def to_uint8(data: np.ndarray, limits: np.ndarray | None) -> np.ndarray:
    """Scale (bands, rows, cols) pixels to uint8 with per-band ``limits`` (None: already 8-bit)."""
    if limits is None:
        return data.astype(np.uint8, copy=False)
    out = np.empty(data.shape, dtype=np.uint8)
    for b in range(data.shape[0]):
        lo, hi = limits[b]
        scaled = (data[b].astype(np.float64) - lo) * (255.0 / (hi - lo))
        out[b] = np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).astype(np.uint8)
    return out
