"""Scenes read with rasterio: GeoTIFF/COG in any CRS, JPEG/PNG screenshots, remote assets (/vsicurl/)."""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from sitewatch.errors import SceneError
from sitewatch.imagery._bands import BandPlan, plan_bands, stretch_limits, to_uint8
from sitewatch.imagery.base import Scene

log = logging.getLogger(__name__)

#: Longest side, in pixels, of the decimated read used to compute the contrast stretch.
STATS_MAX_SIDE = 1024


class RasterScene(Scene):
    """A scene backed by an open rasterio dataset; pixels are read by windows, never all at once.

    Args:
        dataset: an open rasterio dataset (the scene owns it and closes it).
        path: the file path or URL, for messages and provenance.
        crs, transform: georeference, or None for pixel space.
        gsd_m: metres per pixel, or None.
        acquired: acquisition time (UTC), or None.
        metadata: extra scene facts.

    Raises:
        SceneError: unsupported band count or data type.
    """

    def __init__(
        self,
        dataset: rasterio.io.DatasetReader,
        path: str,
        *,
        crs: CRS | None,
        transform: Affine | None,
        gsd_m: float | None,
        acquired: datetime | None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._ds = dataset
        # rasterio datasets are not thread-safe; readers (e.g. a prefetch thread) share this scene.
        self._lock = threading.RLock()
        self.path = path
        self.width, self.height = dataset.width, dataset.height
        self.crs, self.transform = crs, transform
        self.gsd_m, self.acquired = gsd_m, acquired
        self.metadata = dict(metadata or {})
        self._plan: BandPlan = plan_bands(dataset.count, tuple(dataset.colorinterp), dataset.dtypes[0], path)
        if self._plan.note:
            self.metadata.setdefault("warnings", []).append(self._plan.note)
        self._limits: np.ndarray | None = None
        self._stretched = dataset.dtypes[0] != "uint8"
        self._bands = sorted(set(self._plan.indexes))
        self._lut: np.ndarray | None = None
        if self._plan.palette:
            cmap = dataset.colormap(1)
            lut = np.zeros((256, 3), dtype=np.uint8)
            for k, rgba in cmap.items():
                if 0 <= k < 256:
                    lut[k] = rgba[:3]
            self._lut = lut

    @property
    def dataset(self) -> rasterio.io.DatasetReader:
        """The underlying rasterio dataset (read-only use)."""
        return self._ds

    def close(self) -> None:
        self._ds.close()

    def _read(self, window: Window, out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Read the bands of a window that lies inside the image, resampled to ``out_shape``.

        A decimated ``out_shape`` lets GDAL serve the read from overviews.
        """
        resampling = Resampling.nearest if self._plan.palette else Resampling.average
        if out_shape[0] >= window.height and out_shape[1] >= window.width:
            resampling = Resampling.nearest if self._plan.palette else Resampling.bilinear
        try:
            with self._lock:
                data = self._ds.read(
                    self._bands,
                    window=window,
                    out_shape=(len(self._bands), *out_shape),
                    resampling=resampling,
                )
                mask = self._ds.dataset_mask(
                    window=window, out_shape=out_shape, resampling=Resampling.nearest
                )
        except rasterio.errors.RasterioError as e:
            raise SceneError(f"{self.path}: cannot read pixels ({e})") from e
        return data, mask > 0

    def _stretch(self) -> np.ndarray | None:
        if not self._stretched:
            return None
        with self._lock:
            if self._limits is None:
                self._limits = self._compute_limits()
        return self._limits

    def _compute_limits(self) -> np.ndarray:
        """Per-band stretch limits from one decimated read of the whole scene (overviews when present)."""
        scale = max(self.width, self.height) / STATS_MAX_SIDE
        shape = (max(1, round(self.height / max(scale, 1))), max(1, round(self.width / max(scale, 1))))
        data, valid = self._read(Window(0, 0, self.width, self.height), shape)
        nodata = self._ds.nodata
        if nodata is not None and not math.isnan(nodata):
            valid &= ~np.any(data == nodata, axis=0)
        limits = stretch_limits(data, valid)
        self.metadata["stretch"] = {
            int(b): [float(x) for x in lim] for b, lim in zip(self._bands, limits, strict=True)
        }
        return limits

    def read_rgb(
        self, window: Window | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if window is None:
            window = Window(0, 0, self.width, self.height)
        c0, r0 = int(round(window.col_off)), int(round(window.row_off))
        w, h = int(round(window.width)), int(round(window.height))
        rows, cols = out_shape if out_shape is not None else (h, w)
        rgb = np.zeros((rows, cols, 3), dtype=np.uint8)
        valid = np.zeros((rows, cols), dtype=bool)
        if w <= 0 or h <= 0 or rows <= 0 or cols <= 0:
            return rgb, valid
        # Clip to the image and read only that part, so GDAL can use overviews (boundless reads cannot).
        cs, rs = max(c0, 0), max(r0, 0)
        ce, re = min(c0 + w, self.width), min(r0 + h, self.height)
        if ce <= cs or re <= rs:
            return rgb, valid
        sx, sy = cols / w, rows / h
        oc0, or0 = round((cs - c0) * sx), round((rs - r0) * sy)
        oc1, or1 = round((ce - c0) * sx), round((re - r0) * sy)
        if oc1 <= oc0 or or1 <= or0:
            return rgb, valid
        data, mask = self._read(Window(cs, rs, ce - cs, re - rs), (or1 - or0, oc1 - oc0))
        nodata = self._ds.nodata
        if nodata is not None and not math.isnan(nodata):
            mask &= ~np.all(data == nodata, axis=0)
        if np.issubdtype(data.dtype, np.floating):
            mask &= np.all(np.isfinite(data), axis=0)
        limits = self._stretch()
        data8 = to_uint8(data, limits)
        pos = {b: i for i, b in enumerate(self._bands)}
        if self._lut is not None:
            part = self._lut[data8[pos[self._plan.indexes[0]]]]
        else:
            part = np.stack([data8[pos[b]] for b in self._plan.indexes], axis=-1)
        part[~mask] = 0
        rgb[or0:or1, oc0:oc1] = part
        valid[or0:or1, oc0:oc1] = mask
        return rgb, valid
