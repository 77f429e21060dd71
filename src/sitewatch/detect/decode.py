"""Turn the model's dense outputs (centre heatmap + box geometry) into oriented boxes.

The model contract (see docs/detect.md):

* ``heatmap`` ``[N, C, H/s, W/s]``: sigmoid centre scores per category (order of
  :data:`~sitewatch.types.CATEGORIES`), ``s`` the output stride (4).
* ``geometry`` ``[N, 6, H/s, W/s]``: ``offset_x, offset_y`` (centre in input pixels is
  ``((col + offset_x) * s, (row + offset_y) * s)``), ``length_px, width_px`` (input pixels),
  ``cos2θ, sin2θ`` with θ the heading of the length axis, clockwise from image-up.

Decoding keeps local maxima of the heatmap (3x3 max filter) at or above a score threshold (one
for all categories, or one per category), at most ``top_k`` per tile, and reads the geometry at
those cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy.ndimage import maximum_filter


@dataclass(slots=True)
class BoxArray:
    """Oriented boxes as parallel arrays (one row per box).

    Attributes:
        tile: index of the tile (within its batch, or global once mapped) the box came from.
        category: index into the model's categories.
        score: centre score in [0, 1].
        cx, cy: centre, pixels of the frame the boxes are in.
        length, width: sides, pixels (``length >= width``).
        heading_deg: direction of the length axis, degrees clockwise from image-up, in [0, 180).
    """

    tile: np.ndarray
    category: np.ndarray
    score: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    length: np.ndarray
    width: np.ndarray
    heading_deg: np.ndarray

    @classmethod
    def empty(cls) -> BoxArray:
        i = np.zeros(0, dtype=np.int64)
        f = np.zeros(0, dtype=np.float64)
        return cls(i, i.copy(), f, f.copy(), f.copy(), f.copy(), f.copy(), f.copy())

    @classmethod
    def concat(cls, parts: list[BoxArray]) -> BoxArray:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def __len__(self) -> int:
        return int(self.score.shape[0])

    def take(self, idx: np.ndarray) -> BoxArray:
        """The boxes at ``idx`` (integer indices or a boolean mask)."""
        return BoxArray(*(getattr(self, f.name)[idx] for f in fields(self)))

    def corners(self) -> np.ndarray:
        """Corners of every box, shape (n, 4, 2), in order around each box (same frame as the boxes)."""
        t = np.radians(self.heading_deg)
        u = np.stack([np.sin(t), -np.cos(t)], axis=1) * (self.length / 2.0)[:, None]
        v = np.stack([np.cos(t), np.sin(t)], axis=1) * (self.width / 2.0)[:, None]
        c = np.stack([self.cx, self.cy], axis=1)
        return np.stack([c + u + v, c + u - v, c - u - v, c - u + v], axis=1)


def decode(
    heatmap: np.ndarray,
    geometry: np.ndarray,
    *,
    score_threshold: float | Sequence[float] | np.ndarray,
    stride: int = 4,
    top_k: int = 300,
) -> BoxArray:
    """Decode a batch of model outputs into boxes in input-pixel coordinates of each tile.

    Args:
        heatmap: ``[N, C, h, w]`` centre scores in [0, 1].
        geometry: ``[N, 6, h, w]`` as in the module docstring.
        score_threshold: minimum centre score kept: one number for every category, or one per
            heatmap channel (e.g. the shipped per-category thresholds).
        stride: input pixels per output cell.
        top_k: most boxes kept per tile (highest scores).

    Returns:
        Boxes with ``tile`` = index in the batch; centres and sides in pixels of the tile
        as fed to the model.
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    geo = np.asarray(geometry, dtype=np.float32)
    if (
        hm.ndim != 4
        or geo.ndim != 4
        or geo.shape[1] != 6
        or hm.shape[2:] != geo.shape[2:]
        or hm.shape[0] != geo.shape[0]
    ):
        raise ValueError(f"unexpected output shapes heatmap {hm.shape}, geometry {geo.shape}")
    thr = np.asarray(score_threshold, dtype=np.float32)
    if thr.ndim == 1:
        if thr.shape[0] != hm.shape[1]:
            raise ValueError(f"{thr.shape[0]} score thresholds for {hm.shape[1]} heatmap channels")
        thr = thr.reshape(1, -1, 1, 1)
    elif thr.ndim != 0:
        raise ValueError(f"score_threshold must be a number or one per channel, got shape {thr.shape}")
    peaks = (hm >= thr) & (hm == maximum_filter(hm, size=(1, 1, 3, 3), mode="constant", cval=0.0))
    n, c, r, q = np.nonzero(peaks)
    if n.size == 0:
        return BoxArray.empty()
    scores = hm[n, c, r, q]
    # Top-k per tile: sort by (tile, -score), then rank within each tile.
    order = np.lexsort((-scores, n))
    n, c, r, q, scores = n[order], c[order], r[order], q[order], scores[order]
    first = np.searchsorted(n, n, side="left")
    keep = (np.arange(n.size) - first) < top_k
    n, c, r, q, scores = n[keep], c[keep], r[keep], q[keep], scores[keep]
    g = geo[n, :, r, q]  # (k, 6)
    finite = np.isfinite(g).all(axis=1)
    if not finite.all():
        n, c, r, q, scores, g = n[finite], c[finite], r[finite], q[finite], scores[finite], g[finite]
    # Sides below one pixel are not objects' sizes; clamp them so every box is a proper polygon.
    # Nor are sides beyond the tile's diagonal (a bound merging row by row relies on).
    diag = float(np.hypot(*hm.shape[2:])) * stride
    length = np.clip(np.abs(g[:, 2]), 1.0, diag).astype(np.float64)
    width = np.clip(np.abs(g[:, 3]), 1.0, diag).astype(np.float64)
    heading = np.degrees(np.arctan2(g[:, 5], g[:, 4]) / 2.0)
    swap = width > length
    length, width = np.where(swap, width, length), np.where(swap, length, width)
    heading = np.where(swap, heading + 90.0, heading) % 180.0
    return BoxArray(
        tile=n.astype(np.int64),
        category=c.astype(np.int64),
        score=scores.astype(np.float64),
        cx=(q + g[:, 0]).astype(np.float64) * stride,
        cy=(r + g[:, 1]).astype(np.float64) * stride,
        length=length,
        width=width,
        heading_deg=heading,
    )
