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
   aircraft's centre is not inside the vehicle's box. Size classes of one kind (large and small
   vehicle, :data:`SIZE_CLASSES`) are also one object when more than ``nested_fraction`` of the
   smaller box lies inside the other: vehicles do not stand on each other, so a lorry seen as a
   large vehicle over its trailer and a small one over its cab is one lorry.

The per-tile *core* rule (keep a detection from the tile whose core holds its centre, and whole
boxes of other tiles as spares) runs before this, in :class:`~sitewatch.detect.sliced.SlicedDetector`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from sitewatch.detect.decode import BoxArray
from sitewatch.geometry import overlapping_pairs, polygons

#: Categories that are size classes of one kind of object (same value: same kind).
SIZE_CLASSES: dict[str, str] = {"large-vehicle": "vehicle", "small-vehicle": "vehicle"}


def size_groups(categories: tuple[str, ...] | list[str]) -> np.ndarray:
    """Per category index, the index of its kind in :data:`SIZE_CLASSES` (-1: a kind of its own)."""
    kinds = sorted(set(SIZE_CLASSES.values()))
    return np.array([kinds.index(SIZE_CLASSES[c]) if c in SIZE_CLASSES else -1 for c in categories])


#: Edge codes of a candidate box (see :func:`merge`): whole and centred in its tile's core;
#: touching an inner tile edge (centred in the core); whole but centred outside the core (spare).
EDGE_WHOLE, EDGE_TRUNCATED, EDGE_SPARE = 0, 1, 2


def merge_rank(boxes: BoxArray, category_thresholds: np.ndarray | None = None) -> np.ndarray:
    """The order :func:`merge` keeps boxes in (higher first): score, or score over its threshold."""
    if category_thresholds is None:
        return boxes.score
    return boxes.score / np.maximum(np.asarray(category_thresholds, dtype=float)[boxes.category], 1e-6)


def merge(
    boxes: BoxArray,
    *,
    edge: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    cross_iou_threshold: float = 0.7,
    contain_threshold: float = 0.8,
    shared_centre_area_ratio: float = 3.0,
    category_thresholds: np.ndarray | None = None,
    size_group: np.ndarray | None = None,
    nested_fraction: float = 0.5,
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
        size_group: per category index, its kind among size classes (:func:`size_groups`; -1:
            none). None: no size classes.
        nested_fraction: two boxes of size classes of one kind are one object when more than this
            share of the smaller one's area lies inside the other (1: off).
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
    if size_group is not None and len(i):
        group = np.asarray(size_group)[boxes.category]
        nested = (
            ~same
            & (group[i] >= 0)
            & (group[i] == group[j])
            & (inter > nested_fraction * np.maximum(np.minimum(area[i], area[j]), 1e-12))
        )
        shared |= nested
    suppress = (same & (iou >= iou_threshold)) | (~same & ((iou >= cross_iou_threshold) | shared))
    si, sj = i[suppress], j[suppress]
    # Adjacency of suppressing pairs (both directions), CSR-style.
    src = np.concatenate([si, sj])
    dst = np.concatenate([sj, si])
    order_e = np.argsort(src, kind="stable")
    src, dst = src[order_e], dst[order_e]
    starts = np.searchsorted(src, np.arange(n + 1))
    rank = merge_rank(boxes, category_thresholds)
    order = np.lexsort((np.arange(n), -rank))
    kept = []
    for k in order:
        if not alive[k]:
            continue
        kept.append(k)
        alive[dst[starts[k] : starts[k + 1]]] = False
    return np.asarray(kept, dtype=np.int64)


class RowMerge:
    """:func:`merge` over candidates that arrive row by row, holding only those the rows to come can touch.

    Boxes interact in :func:`merge` only when their polygons intersect or their centres lie within
    half the shorter length, so the candidates fall into independent groups (connected
    components of that relation). A group none of whose boxes reaches within ``reach`` of the
    rows still to run is merged and let go; the rest wait. The result equals one :func:`merge` of
    all the candidates, in the same order, while memory follows a few rows of tiles, not the scene.

    Args:
        reach: how far above its tile's top edge a box of a later tile can reach, pixels (a box's
            half diagonal and half length are bounded by it).
        **merge_args: the arguments of :func:`merge` besides the boxes and their edge codes.
    """

    def __init__(self, reach: float, **merge_args: Any) -> None:
        self.reach = float(reach)
        self.merge_args = merge_args
        self._boxes: list[BoxArray] = []
        self._edge: list[np.ndarray] = []
        self._index: list[np.ndarray] = []
        self._seen = 0
        self._kept: list[BoxArray] = []
        self._kept_index: list[np.ndarray] = []

    @property
    def held(self) -> int:
        """Candidates waiting for rows still to run."""
        return sum(len(b) for b in self._boxes)

    def add(self, boxes: BoxArray, edge: np.ndarray, next_row: float) -> None:
        """Take a batch of candidates; ``next_row``: least top edge of the tiles yet to run (inf: none)."""
        self._boxes.append(boxes)
        self._edge.append(np.asarray(edge, dtype=np.int8))
        self._index.append(np.arange(self._seen, self._seen + len(boxes)))
        self._seen += len(boxes)
        self._flush(next_row)

    def result(self) -> BoxArray:
        """The merged boxes of everything added (call once every row has run)."""
        self._flush(np.inf)
        if not self._kept:
            return BoxArray.concat([])
        kept = BoxArray.concat(self._kept)
        index = np.concatenate(self._kept_index)
        order = np.lexsort((index, -merge_rank(kept, self.merge_args.get("category_thresholds"))))
        return kept.take(order)

    def _flush(self, next_row: float) -> None:
        if not self._boxes:
            return
        boxes, edge, index = (
            BoxArray.concat(self._boxes),
            np.concatenate(self._edge),
            np.concatenate(self._index),
        )
        if len(boxes) == 0:
            self._boxes, self._edge, self._index = [], [], []
            return
        done = np.ones(len(boxes), dtype=bool)
        if np.isfinite(next_row):
            ymax = boxes.corners()[:, :, 1].max(axis=1)
            waiting = ymax >= next_row - self.reach
            if waiting.any():
                group = _groups(boxes)
                done = ~np.isin(group, group[waiting])
        if done.any():
            ready = np.flatnonzero(done)
            part = boxes.take(ready)
            keep = merge(part, edge=edge[ready], **self.merge_args)
            self._kept.append(part.take(keep))
            self._kept_index.append(index[ready][keep])
        rest = np.flatnonzero(~done)
        self._boxes, self._edge, self._index = [boxes.take(rest)], [edge[rest]], [index[rest]]


#: Slack of :func:`_touching`, pixels: boxes this close count as touching, so that rounding never
#: splits a pair that :func:`merge` (GEOS on the corner coordinates) sees as intersecting.
TOUCH_SLACK_PX = 1e-6


def _touching(boxes: BoxArray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Per pair ``(i[k], j[k])``, whether the two oriented boxes intersect (edges touching included).

    Separating-axis test on the four edge directions of the two rectangles: two convex polygons
    are disjoint exactly when, on one of these axes, the distance between their centres exceeds
    the sum of their half-extents. Pure array arithmetic, no polygon built.
    """
    t = np.radians(boxes.heading_deg)
    u = np.stack([np.sin(t), -np.cos(t)], axis=1)  # along the length, as BoxArray.corners
    v = np.stack([np.cos(t), np.sin(t)], axis=1)
    half_l, half_w = boxes.length / 2.0, boxes.width / 2.0
    d = np.stack([boxes.cx[j] - boxes.cx[i], boxes.cy[j] - boxes.cy[i]], axis=1)
    apart = np.zeros(len(i), dtype=bool)
    axes = ((u[i], half_l[i], j), (v[i], half_w[i], j), (u[j], half_l[j], i), (v[j], half_w[j], i))
    for axis, own, other in axes:  # an edge direction of one box, its half-extent there, the other box
        reach = np.abs((u[other] * axis).sum(1)) * half_l[other]
        reach += np.abs((v[other] * axis).sum(1)) * half_w[other]
        apart |= np.abs((d * axis).sum(1)) > own + reach + TOUCH_SLACK_PX
    return ~apart


def _groups(boxes: BoxArray) -> np.ndarray:
    """Label per box of the groups :func:`merge` treats independently (see :class:`RowMerge`).

    Two boxes are linked when their polygons intersect or their centres lie within half the
    shorter length. Candidate pairs come from the boxes' bounding squares (half-side: the half
    diagonal, which bounds both relations), then the centre distance and :func:`_touching` decide;
    the labels are the connected components of the links.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(boxes)
    radius = 0.5 * np.hypot(boxes.length, boxes.width)
    squares = shapely.box(boxes.cx - radius, boxes.cy - radius, boxes.cx + radius, boxes.cy + radius)
    i, j = shapely.STRtree(squares).query(squares)  # bounding boxes that meet
    i, j = i[i < j], j[i < j]
    dist = np.hypot(boxes.cx[i] - boxes.cx[j], boxes.cy[i] - boxes.cy[j])
    link = dist <= 0.5 * np.minimum(boxes.length[i], boxes.length[j])
    maybe = np.flatnonzero(~link & (dist <= radius[i] + radius[j] + TOUCH_SLACK_PX))
    link[maybe] = _touching(boxes, i[maybe], j[maybe])
    graph = coo_matrix((np.ones(int(link.sum()), dtype=np.int8), (i[link], j[link])), shape=(n, n))
    return connected_components(graph, directed=False)[1]
