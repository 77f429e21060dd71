"""Pixel change between two co-registered images, cloud masking, per-zone summaries.

Method (all on pass A's working grid, pass B already resampled onto it):

1. Compared area = valid in both passes and not cloud in either (:func:`cloud_mask`).
2. Radiometric normalisation: B's colour histogram matched to A's over the compared area
   (:func:`skimage.exposure.match_histograms`), then a Gaussian blur of ``change_sigma_px``.
3. Difference = largest absolute per-channel difference (grey levels 0-255).
4. Threshold = ``max(Otsu over the compared area, change_min_diff)``: Otsu adapts to the pair,
   the fixed floor stops it from splitting pure noise when little has changed.
5. Morphological opening (3x3) and removal of blobs smaller than ``min_blob_area_m2``.

Cloud mask heuristic (documented, deliberately conservative): a pixel is cloud when it is bright
(grey >= ``cloud_min_grey``), unsaturated (HSV saturation <= ``cloud_max_saturation``) and flat
(grey std in a 9x9 window <= ``cloud_max_local_std``), in connected blobs of at least
``cloud_min_area_m2``. Bright concrete usually has texture (joints, markings, stains) and is
rarely that flat over such areas; thin haze is not caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy import ndimage
from skimage.exposure import match_histograms
from skimage.filters import threshold_otsu
from skimage.morphology import remove_small_objects

from sitewatch.compare.settings import CompareSettings


@dataclass(slots=True)
class ChangeMap:
    """Changed pixels on pass A's working grid.

    Attributes:
        changed: bool (rows, cols), True where the ground changed.
        compared: bool (rows, cols), True where both passes were seen (valid, cloud-free).
        difference: float32 (rows, cols), normalised absolute difference, grey levels.
        threshold: the difference threshold used, grey levels.
        gsd_m: metres per pixel of this grid, or None.
    """

    changed: np.ndarray
    compared: np.ndarray
    difference: np.ndarray
    threshold: float
    gsd_m: float | None = None


def _area_px(area_m2: float, gsd_m: float | None, default_px: float) -> int:
    return int(round(area_m2 / (gsd_m * gsd_m))) if gsd_m else int(default_px)


def cloud_mask(
    rgb: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    gsd_m: float | None = None,
    settings: CompareSettings | None = None,
) -> np.ndarray:
    """Bright, unsaturated, flat blobs (see module docstring) as a bool (rows, cols) mask."""
    s = settings or CompareSettings()
    rgb = rgb.astype(np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255.0
    mean = cv2.blur(grey, (9, 9))
    std = np.sqrt(np.maximum(cv2.blur(grey * grey, (9, 9)) - mean * mean, 0.0))
    cand = (grey >= s.cloud_min_grey) & (sat <= s.cloud_max_saturation) & (std <= s.cloud_max_local_std)
    if valid is not None:
        cand &= valid
    cand = ndimage.binary_closing(cand, iterations=2)
    return remove_small_objects(cand, max_size=max(_area_px(s.cloud_min_area_m2, gsd_m, 5000) - 1, 1))


def change_map(
    rgb_a: np.ndarray,
    rgb_b: np.ndarray,
    compared: np.ndarray,
    *,
    gsd_m: float | None = None,
    settings: CompareSettings | None = None,
) -> ChangeMap:
    """Changed pixels between A and B (B already on A's grid).

    Args:
        rgb_a, rgb_b: uint8 (rows, cols, 3) images on the same grid.
        compared: bool (rows, cols), pixels seen in both passes (valid and cloud-free).
        gsd_m: metres per pixel of the grid (for the minimum blob area), or None (then 16 px).
        settings: thresholds (:class:`CompareSettings`).
    """
    s = settings or CompareSettings()
    a: np.ndarray = rgb_a.astype(np.float32)
    b = rgb_b.astype(np.float32)
    diff = np.zeros(compared.shape, np.float32)
    if compared.sum() < 16:
        return ChangeMap(np.zeros(compared.shape, bool), compared, diff, float("nan"), gsd_m)
    b_norm: np.ndarray = b.copy()
    b_norm[compared] = match_histograms(b[compared], a[compared], channel_axis=-1)
    if s.change_sigma_px > 0:
        a = cv2.GaussianBlur(a, (0, 0), s.change_sigma_px)
        b_norm = cv2.GaussianBlur(b_norm, (0, 0), s.change_sigma_px)
    diff = np.abs(a - b_norm).max(axis=2)
    diff[~compared] = 0.0
    values = diff[compared]
    otsu = float(threshold_otsu(values)) if values.max() > values.min() else float(values.max())
    threshold = max(otsu, s.change_min_diff)
    changed = (diff > threshold) & compared
    changed = ndimage.binary_opening(changed, structure=np.ones((3, 3), bool))
    changed = remove_small_objects(changed, max_size=max(_area_px(s.min_blob_area_m2, gsd_m, 16) - 1, 1))
    return ChangeMap(changed, compared, diff, threshold, gsd_m)


def summarise(
    cm: ChangeMap, zones: dict[str, np.ndarray], objects: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """Per-zone change: % of the compared area changed, and how much objects explain.

    Args:
        cm: the change map.
        zones: zone name → bool mask on the same grid (e.g. ``{"site": ..., "apron": ...}``).
        objects: bool mask of pixels inside detection boxes of either pass, or None.

    Returns:
        zone → ``{"pct_changed", "pct_explained_by_objects", "pct_unexplained", "changed_m2",
        "compared_m2", "pct_compared"}``; percentages of the zone's compared area except
        ``pct_explained_by_objects`` (share of the changed pixels inside object boxes) and
        ``pct_compared`` (share of the zone that could be compared).
    """
    px_m2 = cm.gsd_m**2 if cm.gsd_m else None
    out: dict[str, dict[str, Any]] = {}
    for name, zmask in zones.items():
        comp = cm.compared & zmask
        n_comp, n_zone = int(comp.sum()), int(zmask.sum())
        changed = cm.changed & zmask
        n_changed = int(changed.sum())
        explained = int((changed & objects).sum()) if objects is not None else 0
        out[name] = {
            "pct_changed": round(100.0 * n_changed / n_comp, 3) if n_comp else None,
            "pct_explained_by_objects": round(100.0 * explained / n_changed, 1) if n_changed else 0.0,
            "pct_unexplained": round(100.0 * (n_changed - explained) / n_comp, 3) if n_comp else None,
            "pct_compared": round(100.0 * n_comp / n_zone, 1) if n_zone else 0.0,
            "changed_m2": round(n_changed * px_m2, 1) if px_m2 else None,
            "compared_m2": round(n_comp * px_m2, 1) if px_m2 else None,
        }
    return out
