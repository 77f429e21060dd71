"""Synthetic raster factory for imagery/sites tests: files with exact, known georeference and pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = None,
    transform: Affine | None = None,
    driver: str = "GTiff",
    colorinterp: list[Any] | None = None,
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
    gcps: tuple[list[Any], str] | None = None,
    overviews: list[int] | None = None,
    **profile: Any,
) -> Path:
    """Write ``data`` (bands, rows, cols) to ``path`` and return it."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    kw: dict[str, Any] = dict(driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype=data.dtype)
    if crs is not None:
        kw["crs"] = crs
    if transform is not None:
        kw["transform"] = transform
    if nodata is not None:
        kw["nodata"] = nodata
    kw.update(profile)
    with rasterio.open(path, "w", **kw) as dst:
        dst.write(data)
        if colorinterp is not None:
            dst.colorinterp = colorinterp
        if tags:
            dst.update_tags(**tags)
        if gcps is not None:
            dst.gcps = gcps
        if overviews:
            dst.build_overviews(overviews)
    return path
