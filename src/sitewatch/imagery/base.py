"""The :class:`Scene` interface: one image, read by windows as 8-bit RGB.

Every reader (rasterio GeoTIFF/COG, screenshots, STAC assets, in-memory arrays) implements it,
so the detector and the pipeline never care where pixels come from.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

#: GDAL block cache while scattered windows (object chips) are read, MB. A chip covers a few
#: source blocks and is read once; without a cap GDAL keeps up to 5 % of the machine's memory
#: of decoded blocks, which grows with the number of chips read from a large scene.
CHIP_READ_CACHE_MB = 32


@contextlib.contextmanager
def read_cache(mb: int | None) -> Iterator[None]:
    """GDAL's block cache capped at ``mb`` MB inside the block (None: left as it is).

    GDAL's cache is process-wide; the previous cap is restored on exit.
    """
    if mb is None:
        yield
        return
    with rasterio.Env(GDAL_CACHEMAX=int(mb) * 2**20):
        yield


class Scene(ABC):
    """An image of the ground, read by windows.

    Attributes:
        path: the file path or URL it was opened from (for messages and provenance).
        width, height: size in pixels.
        crs: coordinate reference system, or None for pixel-space images (screenshots without anchor).
        transform: affine pixel → CRS transform (rasterio convention), or None.
        gsd_m: ground sample distance in metres per pixel, or None when unknown.
        acquired: acquisition time (timezone-aware UTC), or None.
        metadata: extra scene facts (``platform``, ``off_nadir_deg``, ``view_azimuth_deg``,
            ``sun_elevation_deg``, ``simulated`` ...).
    """

    path: str
    width: int
    height: int
    crs: CRS | None = None
    transform: Affine | None = None
    gsd_m: float | None = None
    acquired: datetime | None = None
    metadata: dict[str, Any]

    @abstractmethod
    def read_rgb(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read a window as 8-bit RGB.

        Args:
            window: pixel window (default: the whole image). Parts outside the image read as 0
                and invalid.
            out_shape: ``(rows, cols)`` to resample the window to (e.g. a working GSD), or None.

        Returns:
            ``(rgb, valid)``: ``rgb`` uint8 array (rows, cols, 3); ``valid`` bool array (rows, cols),
            False for nodata/masked/outside pixels.

        Raises:
            SceneError: the pixels cannot be read.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def georeferenced(self) -> bool:
        """True when pixels map to the ground (CRS and transform known)."""
        return self.crs is not None and self.transform is not None


class ArrayScene(Scene):
    """A scene held in memory (tests, synthetic imagery, decoded screenshots).

    Args:
        rgb: uint8 array (rows, cols, 3).
        path: a name for messages.
        valid: optional bool mask (rows, cols).
    """

    def __init__(
        self,
        rgb: np.ndarray,
        path: str = "<array>",
        *,
        gsd_m: float | None = None,
        crs: CRS | None = None,
        transform: Affine | None = None,
        acquired: datetime | None = None,
        valid: np.ndarray | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError("ArrayScene needs a uint8 array of shape (rows, cols, 3)")
        self._rgb = rgb
        self._valid = valid if valid is not None else np.ones(rgb.shape[:2], dtype=bool)
        self.path = path
        self.height, self.width = rgb.shape[:2]
        self.gsd_m, self.crs, self.transform, self.acquired = gsd_m, crs, transform, acquired
        self.metadata = dict(metadata or {})

    def read_rgb(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if window is None:
            window = Window(0, 0, self.width, self.height)
        c0, r0 = int(round(window.col_off)), int(round(window.row_off))
        w, h = int(round(window.width)), int(round(window.height))
        rgb: np.ndarray = np.zeros((h, w, 3), dtype=np.uint8)
        valid = np.zeros((h, w), dtype=bool)
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + h, self.height), min(c0 + w, self.width)
        if re > rs and ce > cs:
            rgb[rs - r0 : re - r0, cs - c0 : ce - c0] = self._rgb[rs:re, cs:ce]
            valid[rs - r0 : re - r0, cs - c0 : ce - c0] = self._valid[rs:re, cs:ce]
        if out_shape is not None and out_shape != (h, w):
            import cv2

            rgb = cv2.resize(rgb, (out_shape[1], out_shape[0]), interpolation=cv2.INTER_AREA)
            valid = cv2.resize(
                valid.astype(np.uint8), (out_shape[1], out_shape[0]), interpolation=cv2.INTER_NEAREST
            ).astype(bool)
        return rgb, valid
