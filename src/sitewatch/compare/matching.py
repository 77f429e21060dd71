"""Object matching between two co-registered passes: arrived, departed, remained, moved.

Pass B's detections are mapped into pass A's pixel frame with the registration, then one
optimal assignment (:func:`sitewatch.geometry.match_optimal`, Hungarian) pairs objects of the same
category. The cost of a pair is ``centre distance / move radius + (1 - oriented IoU)``; pairs
farther apart than the move radius, of very different lengths, or (for a move) of different
known type groups are not allowed.

Tolerances (pixels of A) scale with each object's size and with the registration error:

* remain tolerance = ``max(remain_tolerance_frac * length, remain_tolerance_min_m / gsd, 3 * error)``
* move radius = ``move_radius_lengths * length + 3 * error``

A matched pair "remained" when its oriented IoU is at least ``remain_iou`` or its centre moved
less than the remain tolerance, otherwise it "moved". An unmatched object of A "departed" and
one of B "arrived" — unless the other pass could not see that spot (outside its footprint,
nodata or cloud): then it is "unobserved", never counted as a change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sitewatch.compare.registration import Registration
from sitewatch.compare.settings import CompareSettings
from sitewatch.geometry import match_optimal, rotated_iou
from sitewatch.identify.hierarchy import label_detection
from sitewatch.types import Detection, OrientedBox

#: Statuses of a compared object; "unobserved" objects are reported apart, never as change.
STATUSES: tuple[str, ...] = ("arrived", "departed", "remained", "moved")

#: ``f(xs, ys) -> bool array``: whether points (pixels of A) can be seen in a pass.
Visibility = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: ``f(x, y) -> zone name or None`` for a point in pixels of A.
ZoneOf = Callable[[float, float], str | None]


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """What happened to one object between pass A and pass B.

    Attributes:
        status: one of :data:`STATUSES`, or "unobserved".
        category: detection category.
        group: type group — the role group when its probability reaches the label threshold, else the
            category.
        zone: site zone holding the object, or None (outside zones, or pass not georeferenced).
        det_a, det_b: the detection in each pass (None where absent), in that pass's own pixels.
        displacement_px: centre displacement after registration, pixels of A, or None.
        displacement_m: the same in metres, or None when the GSD is unknown.
        iou: oriented IoU after registration, or None.
    """

    status: str
    category: str
    group: str
    zone: str | None
    det_a: Detection | None
    det_b: Detection | None
    displacement_px: float | None = None
    displacement_m: float | None = None
    iou: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "category": self.category,
            "group": self.group,
            "zone": self.zone,
            "det_a": _ref(self.det_a),
            "det_b": _ref(self.det_b),
            "displacement_px": None if self.displacement_px is None else round(self.displacement_px, 2),
            "displacement_m": None if self.displacement_m is None else round(self.displacement_m, 2),
            "iou": None if self.iou is None else round(self.iou, 3),
        }


def _ref(d: Detection | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "id": d.id,
        "center": [round(d.box.cx, 1), round(d.box.cy, 1)],
        "type": d.best_type.type_id if d.best_type else None,
    }


def group_of(d: Detection) -> str:
    """Type group of a detection: its role group where the role's calibrated probability (summed
    over its types) reaches the label threshold (:func:`sitewatch.identify.label_detection`), else its
    category."""
    if d.candidates:
        role = label_detection(d, levels=("role",))
        if role.identified:
            return role.key
    return d.category


def box_in_a(box: OrientedBox, reg: Registration) -> OrientedBox:
    """A box given in B's pixels, expressed in A's pixels."""
    c = box.corners()
    xs, ys = reg.inverse_apply(c[:, 0], c[:, 1])
    return OrientedBox.from_corners(np.stack([xs, ys], axis=1))


def match_detections(
    dets_a: Sequence[Detection],
    dets_b: Sequence[Detection],
    registration: Registration,
    *,
    gsd_m: float | None = None,
    settings: CompareSettings | None = None,
    visible_a: Visibility | None = None,
    visible_b: Visibility | None = None,
    zone_of: ZoneOf | None = None,
) -> list[ObjectChange]:
    """Pair the objects of two passes and say what happened to each.

    Args:
        dets_a, dets_b: detections of pass A and B, each in its own scene's pixels.
        registration: A-pixel → B-pixel transform (:func:`~sitewatch.compare.registration.register`).
        gsd_m: metres per pixel of A, for metric tolerances and displacements; None: pixels only.
        settings: tolerances (:class:`CompareSettings`).
        visible_a, visible_b: whether a point (pixels of A) is observable in pass A / B; None: everywhere.
        zone_of: zone name of a point (pixels of A); None: zones unknown.

    Returns:
        One :class:`ObjectChange` per object (pairs once), statuses in :data:`STATUSES` or
        "unobserved", A's objects first in input order, then B's arrivals.
    """
    s = settings or CompareSettings()
    boxes_a = [d.box for d in dets_a]
    boxes_b = [box_in_a(d.box, registration) for d in dets_b]
    groups_a, groups_b = [group_of(d) for d in dets_a], [group_of(d) for d in dets_b]
    seen_b_for_a = _visible(visible_b, boxes_a)
    seen_a_for_b = _visible(visible_a, boxes_b)
    pair = _pair_geometry(boxes_a, boxes_b, registration.error_px, gsd_m, s)
    cat_a = np.array([d.category for d in dets_a], dtype=object)[:, None]
    cat_b = np.array([d.category for d in dets_b], dtype=object)[None, :]
    ga, gb = np.array(groups_a, dtype=object)[:, None], np.array(groups_b, dtype=object)[None, :]
    # A move keeps the type group when both are identified, and needs the old spot seen empty and
    # the new spot seen empty before.
    may_move = ((ga == gb) | (cat_a == ga) | (cat_a == gb)) & seen_b_for_a[:, None] & seen_a_for_b[None, :]
    allowed = (cat_a == cat_b) & pair.near & (pair.remained | may_move)
    rows, cols = match_optimal(pair.cost, allowed)
    pairs = dict(zip(rows.tolist(), cols.tolist(), strict=True))
    out: list[ObjectChange] = []
    for i, da in enumerate(dets_a):
        zone = zone_of(boxes_a[i].cx, boxes_a[i].cy) if zone_of else None
        if i in pairs:
            j = pairs[i]
            dist, iou = float(pair.dist[i, j]), float(pair.iou[i, j])
            out.append(
                ObjectChange(
                    "remained" if pair.remained[i, j] else "moved",
                    da.category,
                    groups_a[i],
                    zone,
                    da,
                    dets_b[j],
                    dist,
                    dist * gsd_m if gsd_m else None,
                    iou,
                )
            )
        else:
            status = "departed" if seen_b_for_a[i] else "unobserved"
            out.append(ObjectChange(status, da.category, groups_a[i], zone, da, None))
    matched_b = set(pairs.values())
    for j, db in enumerate(dets_b):
        if j in matched_b:
            continue
        zone = zone_of(boxes_b[j].cx, boxes_b[j].cy) if zone_of else None
        status = "arrived" if seen_a_for_b[j] else "unobserved"
        out.append(ObjectChange(status, db.category, groups_b[j], zone, None, db))
    return out


@dataclass(frozen=True, slots=True)
class _PairGeometry:
    """Every pair (row of A, column of B) of boxes in A's pixels.

    Attributes:
        dist: centre distance, pixels of A.
        iou: oriented IoU.
        remained: IoU or distance within the remain tolerances.
        near: lengths alike (``size_ratio_max``) and centres within the move radius.
        cost: ``dist / move radius + (1 - iou)`` where near, else infinite.
    """

    dist: np.ndarray
    iou: np.ndarray
    remained: np.ndarray
    near: np.ndarray
    cost: np.ndarray


def _pair_geometry(
    boxes_a: list[OrientedBox],
    boxes_b: list[OrientedBox],
    error_px: float,
    gsd_m: float | None,
    s: CompareSettings,
) -> _PairGeometry:
    """Distances, IoUs, tolerances and costs of all pairs (see the module docstring)."""
    err3 = 3.0 * error_px
    min_px = s.remain_tolerance_min_m / gsd_m if gsd_m else 0.0
    xa, ya, la = np.array([[b.cx, b.cy, b.length] for b in boxes_a]).reshape(-1, 3).T
    xb, yb, lb = np.array([[b.cx, b.cy, b.length] for b in boxes_b]).reshape(-1, 3).T
    length = np.maximum(la[:, None], lb[None, :])
    dist = np.hypot(xa[:, None] - xb[None, :], ya[:, None] - yb[None, :])
    radius = s.move_radius_lengths * length + err3
    iou = rotated_iou(boxes_a, boxes_b)
    tolerance = np.maximum(np.maximum(s.remain_tolerance_frac * length, min_px), err3)
    remained = (iou >= s.remain_iou) | (dist <= tolerance)
    near = (np.minimum(la[:, None], lb[None, :]) * s.size_ratio_max >= length) & (dist <= radius)
    cost = np.full(near.shape, np.inf)
    cost[near] = dist[near] / radius[near] + (1.0 - iou[near])
    return _PairGeometry(dist, iou, remained, near, cost)


def _visible(fn: Visibility | None, boxes: list[OrientedBox]) -> np.ndarray:
    if fn is None or not boxes:
        return np.ones(len(boxes), dtype=bool)
    xs = np.array([b.cx for b in boxes])
    ys = np.array([b.cy for b in boxes])
    return np.asarray(fn(xs, ys), dtype=bool)
