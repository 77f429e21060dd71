"""Merge boxes from overlapping tiles (and scales) into one box per object.

Three rules, in this order (all on oriented polygons with shapely 2, candidate pairs from an
STRtree, so cost grows with the number of *overlapping* pairs, not n²):

1. **Truncated boxes**: a box that touches an inner edge of its tile (the object runs out of
   the tile) is dropped when at least ``contain_threshold`` of its area lies inside an untruncated
   box of the same category, i.e. when another tile (or a coarser scale) saw the object whole.
   A *spare* box (whole, but centred outside its tile's core, so another tile answers for it)
   stands in for the truncated boxes it drops this way and is dropped itself when it drops none:
   an aircraft longer than the tile overlap is measured from the tile that sees it whole.
2. **Per-category NMS**: greedy by score; a box is suppressed by a better box of its category
   with rotated IoU ≥ ``iou_threshold``.
3. **Cross-category NMS**: a box is suppressed by a better box of another category with IoU ≥
   ``cross_iou_threshold`` (one object called both small- and large-vehicle), or when the two
   boxes share a centre: each centre lies inside the other box and their areas differ by less
   than ``shared_centre_area_ratio`` (one aircraft also called a ship with another heading; or
   the centres closer than half the shorter box's length: a boat also called a car). The
   category with the higher score at that centre wins, scores measured against each category's
   operating threshold (``category_thresholds``: a ship at 0.40 against a ship threshold of 0.35
   outranks an aircraft at 0.45 against 0.475). A vehicle under a wing is not affected: the
   aircraft's centre is not inside the vehicle's box.

The per-tile *core* rule (keep a detection from the tile whose core holds its centre, and whole
boxes of other tiles as spares) runs before this, in :class:`~sitewatch.detect.sliced.SlicedDetector`.
"""

from __future__ import annotations

import numpy as np
import shapely

from sitewatch.detect.decode import BoxArray

#: Edge codes of a candidate box (see :func:`merge`): whole and centred in its tile's core;
#: touching an inner tile edge (centred in the core); whole but centred outside the core (spare).
EDGE_WHOLE, EDGE_TRUNCATED, EDGE_SPARE = 0, 1, 2


def polygons(boxes: BoxArray) -> np.ndarray:
    """Shapely polygons of the boxes (same frame), one per box."""
    if len(boxes) == 0:
        return np.empty(0, dtype=object)
    return shapely.polygons(boxes.corners())


def overlapping_pairs(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of intersecting polygons with their intersection areas."""
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


def rotated_iou(a: BoxArray, b: BoxArray) -> np.ndarray:
    """Rotated IoU matrix ``(len(a), len(b))`` of two sets of boxes in one frame."""
    return polygon_iou(polygons(a), polygons(b))


def merge(
    boxes: BoxArray,
    *,
    edge: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    cross_iou_threshold: float = 0.7,
    contain_threshold: float = 0.8,
    shared_centre_area_ratio: float = 3.0,
    category_thresholds: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the boxes to keep (in rank order: by score, or by score against the category thresholds).

    Args:
        boxes: candidate boxes, all in one pixel frame.
        edge: code per box (``EDGE_WHOLE``, ``EDGE_TRUNCATED``, ``EDGE_SPARE``); None: all whole.
        iou_threshold: same-category rotated IoU at which the weaker box is dropped.
        cross_iou_threshold: the same across categories.
        contain_threshold: share of a truncated box's area inside an untruncated box of its
            category at which it is dropped.
        shared_centre_area_ratio: boxes of two categories that contain each other's centres
            are one object when the larger is at most this many times the smaller (0: off).
        category_thresholds: operating score threshold per category index; boxes are ranked
            by ``score / threshold`` (the same order as by score within a category). None: by score.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    polys = polygons(boxes)
    area = shapely.area(polys)
    i, j, inter = overlapping_pairs(polys)
    same = boxes.category[i] == boxes.category[j]
    alive = np.ones(n, dtype=bool)
    if edge is not None and (edge != EDGE_WHOLE).any():
        # Rule 1, both directions of each pair; a spare lives only where it replaces a cut box.
        truncated, spare = edge == EDGE_TRUNCATED, edge == EDGE_SPARE
        needed = np.zeros(n, dtype=bool)
        for a, b in ((i, j), (j, i)):
            hit = (
                same
                & truncated[a]
                & ~truncated[b]
                & (inter >= contain_threshold * np.maximum(area[a], 1e-12))
            )
            alive[a[hit]] = False
            needed[b[hit]] = True
        alive &= ~spare | needed
    iou = inter / np.maximum(area[i] + area[j] - inter, 1e-12)
    shared = np.zeros(len(i), dtype=bool)
    if shared_centre_area_ratio > 0 and len(i):
        cand = ~same & (
            np.maximum(area[i], area[j])
            <= shared_centre_area_ratio * np.maximum(np.minimum(area[i], area[j]), 1e-12)
        )
        ci, cj = i[cand], j[cand]
        centres = shapely.points(np.column_stack([boxes.cx, boxes.cy]))
        mutual = shapely.contains_properly(polys[ci], centres[cj]) & shapely.contains_properly(
            polys[cj], centres[ci]
        )
        near = np.hypot(boxes.cx[ci] - boxes.cx[cj], boxes.cy[ci] - boxes.cy[cj]) <= 0.5 * np.minimum(
            boxes.length[ci], boxes.length[cj]
        )
        shared[cand] = mutual | near
    suppress = (same & (iou >= iou_threshold)) | (~same & ((iou >= cross_iou_threshold) | shared))
    si, sj = i[suppress], j[suppress]
    # Adjacency of suppressing pairs (both directions), CSR-style.
    src = np.concatenate([si, sj])
    dst = np.concatenate([sj, si])
    order_e = np.argsort(src, kind="stable")
    src, dst = src[order_e], dst[order_e]
    starts = np.searchsorted(src, np.arange(n + 1))
    rank = boxes.score
    if category_thresholds is not None:
        rank = boxes.score / np.maximum(np.asarray(category_thresholds, dtype=float)[boxes.category], 1e-6)
    order = np.lexsort((np.arange(n), -rank))
    kept = []
    for k in order:
        if not alive[k]:
            continue
        kept.append(k)
        alive[dst[starts[k] : starts[k + 1]]] = False
    return np.asarray(kept, dtype=np.int64)
