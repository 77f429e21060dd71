"""Reference object change from labels, and agreement of a comparison with it.

The reference for a same-footprint pair with a known shift: pass B's label boxes are moved back
into A's frame by the known shift, then paired one to one by oriented IoU
(:func:`~sitewatch.geometry.match_optimal` over the pairs with IoU >= 0.5); a pair "remained", an
unpaired A box "departed", an unpaired B box "arrived". It uses the known shift instead of a
registration estimate and IoU alone instead of the distance and size tolerances, so it checks
:func:`~sitewatch.compare.matching.match_detections` independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitewatch.compare.matching import ObjectChange
from sitewatch.geometry import match_optimal, rotated_iou
from sitewatch.types import OrientedBox


@dataclass(frozen=True, slots=True)
class Reference:
    """Reference statuses: ``a[i]`` for A's boxes ("remained"/"departed"), ``b[j]`` for B's
    ("remained"/"arrived")."""

    a: tuple[str, ...]
    b: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        return {
            "remained": self.a.count("remained"),
            "departed": self.a.count("departed"),
            "arrived": self.b.count("arrived"),
        }


def reference_changes(
    boxes_a: Sequence[OrientedBox],
    boxes_b: Sequence[OrientedBox],
    shift_x: float,
    shift_y: float,
    *,
    iou_min: float = 0.5,
) -> Reference:
    """Reference statuses from two label sets and the known A→B shift (pixels)."""
    back = [b.translated(-shift_x, -shift_y) for b in boxes_b]
    iou = rotated_iou(boxes_a, back)
    rows, cols = match_optimal(1.0 - iou, iou >= iou_min)
    status_a = np.full(len(boxes_a), "departed", dtype=object)
    status_b = np.full(len(boxes_b), "arrived", dtype=object)
    status_a[rows] = status_b[cols] = "remained"
    return Reference(tuple(status_a.tolist()), tuple(status_b.tolist()))


def statuses(
    changes: Sequence[ObjectChange], n_a: int, n_b: int, dets_a: Sequence, dets_b: Sequence
) -> Reference:
    """Per-object statuses of a comparison in the reference's terms ("moved" = departed + arrived)."""
    ia = {id(d): k for k, d in enumerate(dets_a)}
    ib = {id(d): k for k, d in enumerate(dets_b)}
    sa, sb = ["departed"] * n_a, ["arrived"] * n_b
    for c in changes:
        if c.status == "remained":
            sa[ia[id(c.det_a)]] = "remained"
            sb[ib[id(c.det_b)]] = "remained"
        elif c.status == "unobserved":
            if c.det_a is not None:
                sa[ia[id(c.det_a)]] = "unobserved"
            if c.det_b is not None:
                sb[ib[id(c.det_b)]] = "unobserved"
    return Reference(tuple(sa), tuple(sb))


def agreement(found: Reference, ref: Reference) -> tuple[int, int]:
    """``(objects with the same status, objects)`` over both passes."""
    same = sum(x == y for x, y in zip(found.a, ref.a, strict=True)) + sum(
        x == y for x, y in zip(found.b, ref.b, strict=True)
    )
    return same, len(ref.a) + len(ref.b)


@dataclass(frozen=True, slots=True)
class PointMatch:
    """Counts for precision/recall of one status: found objects near a reference object and vice versa."""

    found_hit: int
    found: int
    ref_hit: int
    ref: int

    def __add__(self, other: PointMatch) -> PointMatch:
        return PointMatch(
            self.found_hit + other.found_hit,
            self.found + other.found,
            self.ref_hit + other.ref_hit,
            self.ref + other.ref,
        )

    @property
    def precision(self) -> float:
        return self.found_hit / self.found if self.found else float("nan")

    @property
    def recall(self) -> float:
        return self.ref_hit / self.ref if self.ref else float("nan")


def point_match(found: Sequence[OrientedBox], ref: Sequence[OrientedBox], radius_px: float) -> PointMatch:
    """Precision/recall counts of ``found`` boxes against ``ref`` boxes (same frame) by centre distance.

    One-to-one (:func:`~sitewatch.geometry.match_optimal` over the pairs at most ``radius_px`` apart,
    least total distance): each reference box is taken by at most one found box, so a duplicate
    detection is not a second hit.
    """
    if not found or not ref:
        return PointMatch(0, len(found), 0, len(ref))
    fa = np.array([(b.cx, b.cy) for b in found])
    ra = np.array([(b.cx, b.cy) for b in ref])
    d = np.hypot(fa[:, None, 0] - ra[None, :, 0], fa[:, None, 1] - ra[None, :, 1])
    rows, _ = match_optimal(d, d <= radius_px)
    return PointMatch(len(rows), len(found), len(rows), len(ref))
