"""Object matching between two co-registered passes: arrived, departed, remained, moved.

Pass B's detections are mapped into pass A's pixel frame with the registration, then one
Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`) pairs objects of the same
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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from shapely.geometry import Polygon

from sitewatch.compare.registration import Registration
from sitewatch.compare.settings import CompareSettings
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


def oriented_iou(a: OrientedBox, b: OrientedBox) -> float:
    """Intersection over union of two oriented boxes (same pixel frame)."""
    pa, pb = Polygon(a.corners()), Polygon(b.corners())
    inter = pa.intersection(pb).area
    union = pa.area + pb.area - inter
    return float(inter / union) if union > 0 else 0.0


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
    err3 = 3.0 * registration.error_px
    min_px = s.remain_tolerance_min_m / gsd_m if gsd_m else 0.0
    n, m = len(dets_a), len(dets_b)
    seen_b_for_a = _visible(visible_b, boxes_a)
    seen_a_for_b = _visible(visible_a, boxes_b)
    cost = np.full((n, m), np.inf)
    info: dict[tuple[int, int], tuple[float, float, bool]] = {}
    for i, (da, ba) in enumerate(zip(dets_a, boxes_a, strict=True)):
        for j, (db, bb) in enumerate(zip(dets_b, boxes_b, strict=True)):
            if da.category != db.category:
                continue
            length = max(ba.length, bb.length)
            if min(ba.length, bb.length) * s.size_ratio_max < length:
                continue
            dist = math.hypot(ba.cx - bb.cx, ba.cy - bb.cy)
            radius = s.move_radius_lengths * length + err3
            if dist > radius:
                continue
            iou = oriented_iou(ba, bb)
            remained = iou >= s.remain_iou or dist <= max(s.remain_tolerance_frac * length, min_px, err3)
            ga, gb = group_of(da), group_of(db)
            if not remained and ga != gb and da.category not in (ga, gb):
                continue  # a move keeps the type group when both are identified
            if not remained and not (seen_b_for_a[i] and seen_a_for_b[j]):
                continue  # a move needs the old spot seen empty and the new spot seen empty before
            cost[i, j] = dist / radius + (1.0 - iou)
            info[(i, j)] = (dist, iou, remained)
    pairs: dict[int, int] = {}
    if info:
        finite = np.where(np.isfinite(cost), cost, 1e6)
        rows, cols = linear_sum_assignment(finite)
        pairs = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if (int(r), int(c)) in info}
    out: list[ObjectChange] = []
    for i, da in enumerate(dets_a):
        zone = zone_of(boxes_a[i].cx, boxes_a[i].cy) if zone_of else None
        if i in pairs:
            j = pairs[i]
            dist, iou, remained = info[(i, j)]
            out.append(
                ObjectChange(
                    "remained" if remained else "moved",
                    da.category,
                    group_of(da),
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
            out.append(ObjectChange(status, da.category, group_of(da), zone, da, None))
    matched_b = set(pairs.values())
    for j, db in enumerate(dets_b):
        if j in matched_b:
            continue
        zone = zone_of(boxes_b[j].cx, boxes_b[j].cy) if zone_of else None
        status = "arrived" if seen_a_for_b[j] else "unobserved"
        out.append(ObjectChange(status, db.category, group_of(db), zone, None, db))
    return out


def _visible(fn: Visibility | None, boxes: list[OrientedBox]) -> np.ndarray:
    if fn is None or not boxes:
        return np.ones(len(boxes), dtype=bool)
    xs = np.array([b.cx for b in boxes])
    ys = np.array([b.cy for b in boxes])
    return np.asarray(fn(xs, ys), dtype=bool)
