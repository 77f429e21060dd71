"""Box geometry in one pixel frame: oriented-box polygons, rotated IoU and one-to-one matching.

Frames: every box of a call is in one pixel frame (x = column, y = row, pixels; headings in
degrees clockwise from image-up, as in :mod:`sitewatch.types`). Polygons are shapely 2 arrays and
IoU matrices are computed for the intersecting pairs only (an STRtree query), never pair by pair.

Matching has two rules, each used wherever its convention applies:

* :func:`match_greedy`, the VOC rule of detection AP: predictions in descending score order each
  claim the labelled object they overlap most; a prediction whose best object another prediction
  claimed first stays unmatched (a duplicate). Used where AP is computed
  (:mod:`sitewatch.detect.evaluate`).
* :func:`match_optimal`, one-to-one assignment: the most allowed pairs, then the least total cost
  (Hungarian, :func:`scipy.optimize.linear_sum_assignment`). Used for objects between passes
  (:mod:`sitewatch.compare.matching`), the label-derived change reference and point matches
  (:mod:`sitewatch.compare.evaluation`) and detector boxes against labels
  (:mod:`sitewatch.identify.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import shapely

from sitewatch.types import OrientedBox

#: Cost standing in for a pair that may not be matched (at least; see :func:`match_optimal`).
_FORBIDDEN_COST = 1e6


@runtime_checkable
class BoxColumns(Protocol):
    """Boxes held as parallel arrays, e.g. :class:`sitewatch.detect.decode.BoxArray`."""

    def __len__(self) -> int: ...

    def corners(self) -> np.ndarray:
        """Corners of every box, shape (n, 4, 2), in order around each box."""
        ...


def polygons(boxes: BoxColumns | Sequence[OrientedBox], *, envelope: bool = False) -> np.ndarray:
    """Shapely polygons of oriented boxes, one per box, in the boxes' pixel frame.

    Args:
        boxes: the boxes, all in one frame.
        envelope: give each box's axis-aligned bounds instead (to compare with axis-aligned labels).
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=object)
    if isinstance(boxes, BoxColumns):
        corners = boxes.corners()
    else:
        corners = np.stack([b.corners() for b in boxes])
    if envelope:
        lo, hi = corners.min(axis=1), corners.max(axis=1)
        return shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1])
    return shapely.polygons(corners)


def overlapping_pairs(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of intersecting polygons with their intersection areas (pixels²)."""
    if len(polys) < 2:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy(), np.zeros(0)
    tree = shapely.STRtree(polys)
    i, j = tree.query(polys, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    inter = shapely.area(shapely.intersection(polys[i], polys[j]))
    return i, j, inter


def polygon_iou(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(pa), len(pb))`` of two arrays of shapely polygons in one frame."""
    out = np.zeros((len(pa), len(pb)))
    if len(pa) == 0 or len(pb) == 0:
        return out
    ib, ia = shapely.STRtree(pa).query(pb, predicate="intersects")
    inter = shapely.area(shapely.intersection(pa[ia], pb[ib]))
    union = shapely.area(pa[ia]) + shapely.area(pb[ib]) - inter
    out[ia, ib] = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return out


def rotated_iou(
    a: BoxColumns | Sequence[OrientedBox], b: BoxColumns | Sequence[OrientedBox], *, envelope: bool = False
) -> np.ndarray:
    """Rotated IoU matrix ``(len(a), len(b))`` of two sets of boxes in one frame (of their
    axis-aligned envelopes with ``envelope``)."""
    return polygon_iou(polygons(a, envelope=envelope), polygons(b, envelope=envelope))


def match_greedy(
    iou: np.ndarray, scores: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions matched to labelled objects by the VOC rule.

    Predictions in descending score order (ties in input order) each claim the object they overlap
    most (the first on ties); the first to claim an object with IoU >= ``threshold`` matches it.

    Args:
        iou: IoU matrix ``(predictions, objects)``.
        scores: prediction scores.
        threshold: least IoU of a match (inclusive).

    Returns:
        ``(best, matched)``: ``best[k]`` the object with the highest IoU with prediction ``k`` when
        that IoU reaches ``threshold``, else -1; ``matched[k]`` True when prediction ``k`` claimed
        ``best[k]`` first (False for duplicates and for predictions without a best object).
    """
    n, m = iou.shape
    best = np.full(n, -1, dtype=np.int64)
    matched = np.zeros(n, dtype=bool)
    if n == 0 or m == 0:
        return best, matched
    top = np.argmax(iou, axis=1)
    hit = iou[np.arange(n), top] >= threshold
    best[hit] = top[hit]
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    claims = order[hit[order]]
    _, first = np.unique(best[claims], return_index=True)
    matched[claims[first]] = True
    return best, matched


def match_optimal(cost: np.ndarray, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of rows and columns: the most allowed pairs, then the least total cost.

    Args:
        cost: cost matrix ``(rows, columns)``; only the allowed entries are read.
        allowed: which pairs may be matched; None: those with a finite cost.

    Returns:
        ``(rows, cols)`` index arrays of the matched pairs, rows ascending.
    """
    cost = np.asarray(cost, dtype=float)
    ok = np.isfinite(cost)
    if allowed is not None:
        ok &= np.asarray(allowed, dtype=bool)
    if not ok.any():
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy()
    # A forbidden pair costs more than all allowed pairs together, so no count of allowed pairs is
    # ever traded for a lower cost.
    forbidden = max(_FORBIDDEN_COST, 1.0 + 2.0 * float(np.abs(cost[ok]).sum()))
    from scipy.optimize import linear_sum_assignment  # here: ~50 MiB that detection never needs

    rows, cols = linear_sum_assignment(np.where(ok, cost, forbidden))
    keep = ok[rows, cols]
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)
