"""Object matching: exact synthetic cases, and label-derived reference change on real Pléiades pairs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pairs_support import pair_rows, read_grey, seeded_subset, sift_shift
from sitewatch.compare import CompareSettings, Registration, match_detections, register
from sitewatch.compare.evaluation import agreement, point_match, reference_changes, statuses
from sitewatch.dota import parse_label_file
from sitewatch.types import Candidate, Detection, OrientedBox


def det(cx: float, cy: float, length: float = 40, width: float = 36, heading: float = 0.0, category: str = "aircraft", role: str | None = None) -> Detection:
    cands = (Candidate("x", "X", role, 0.8),) if role else ()
    return Detection(OrientedBox.make(cx, cy, length, width, heading), category, 0.9, candidates=cands)


def by_status(changes):  # noqa: ANN001, ANN201
    out: dict[str, int] = {}
    for c in changes:
        out[c.status] = out.get(c.status, 0) + 1
    return out


def test_statuses_after_a_known_shift() -> None:
    shift = Registration.translation(30.0, -20.0, quality=1.0, method="test", error_px=0.2)
    a = [det(100, 100), det(300, 300), det(500, 100), det(700, 700, category="ship", length=80, width=15)]
    b = [
        det(100 + 30 + 1, 100 - 20),  # remained (1 px jitter)
        det(300 + 30 + 30, 300 - 20),  # moved 30 px (0.75 lengths)
        det(900 + 30, 900 - 20),  # arrived
        det(700 + 30, 700 - 20, category="small-vehicle", length=10, width=4),  # arrived: other category
    ]
    changes = match_detections(a, b, shift, gsd_m=0.5)
    assert by_status(changes) == {"remained": 1, "moved": 1, "departed": 2, "arrived": 2}
    moved = next(c for c in changes if c.status == "moved")
    assert moved.displacement_px == pytest.approx(30.0, abs=0.01)
    assert moved.displacement_m == pytest.approx(15.0, abs=0.01)
    assert moved.det_a is a[1] and moved.det_b is b[1]


def test_far_relocation_is_departure_plus_arrival() -> None:
    changes = match_detections([det(100, 100)], [det(100, 200)], Registration.translation(0, 0), gsd_m=0.5)
    assert by_status(changes) == {"departed": 1, "arrived": 1}


def test_a_move_keeps_the_type_group() -> None:
    reg = Registration.translation(0, 0)
    fighter, transport = det(100, 100, role="fighter"), det(125, 100, role="heavy transport")
    assert by_status(match_detections([fighter], [transport], reg)) == {"departed": 1, "arrived": 1}
    same = det(125, 100, role="fighter")
    changes = match_detections([fighter], [same], reg)
    assert by_status(changes) == {"moved": 1} and changes[0].group == "fighter"


def test_hidden_spots_are_unobserved_not_departed() -> None:
    def left_half(xs, ys):  # noqa: ANN001, ANN202
        return np.asarray(xs) < 500

    a = [det(100, 100), det(800, 100)]
    changes = match_detections(a, [], Registration.translation(0, 0), visible_b=left_half)
    assert [c.status for c in changes] == ["departed", "unobserved"]


def test_tolerance_grows_with_registration_error() -> None:
    a, b = [det(100, 100, length=20, width=18)], [det(112, 100, length=20, width=18)]
    sharp = Registration.translation(0, 0, error_px=0.3)
    loose = Registration.translation(0, 0, error_px=5.0)
    assert by_status(match_detections(a, b, sharp, gsd_m=0.5)) == {"moved": 1}
    assert by_status(match_detections(a, b, loose, gsd_m=0.5)) == {"remained": 1}


# --- real pairs: label-derived reference ---------------------------------------------------------


def _pairs(data_dir: Path) -> list[dict[str, str]]:
    return pair_rows(data_dir)


def _labelled_pairs(data_dir: Path) -> list[dict[str, str]]:
    return [r for r in _pairs(data_dir) if r["subdir_a"] == r["subdir_b"] == "images"]


def _labels(data_dir: Path, name: str) -> list[Detection]:
    root = data_dir / "airbus-pleiades"
    img = parse_label_file(root / "labels" / (Path(name).stem + ".txt"), root / "images" / name, "airbus-pleiades")
    return [Detection(o.box, "aircraft", 1.0) for o in img.objects if not o.difficult]


def _pair_agreement(data_dir: Path, r: dict[str, str]) -> tuple[int, int]:
    root = data_dir / "airbus-pleiades" / "images"
    a = cv2.imread(str(root / r["image_a"]), cv2.IMREAD_REDUCED_GRAYSCALE_4).astype(np.float32)
    b = cv2.imread(str(root / r["image_b"]), cv2.IMREAD_REDUCED_GRAYSCALE_4).astype(np.float32)
    work = register(a, b, settings=CompareSettings(registration="phase"))
    reg = Registration.translation(4 * work.shift_x_px, 4 * work.shift_y_px, quality=work.quality, method=work.method, error_px=4 * work.error_px)
    da, db = _labels(data_dir, r["image_a"]), _labels(data_dir, r["image_b"])
    # The reference moves B's labels by an independent SIFT shift, not by pairs.csv (quantised, often off).
    shift, _ = sift_shift(read_grey(data_dir, "images", r["image_a"], 2), read_grey(data_dir, "images", r["image_b"], 2))
    ref = reference_changes([d.box for d in da], [d.box for d in db], 2 * float(shift[0]), 2 * float(shift[1]))
    changes = match_detections(da, db, reg, gsd_m=0.5)
    return agreement(statuses(changes, len(da), len(db), da, db), ref)


def test_label_reference_is_reproduced_on_real_pairs(data_dir: Path) -> None:
    """A seeded subset of the labelled pairs (pairs_support), not rows picked for agreeing.

    Measured: 235 of 259 statuses (0.907); the floor is the lower end of its 99 % Wilson interval.
    """
    same = total = 0
    for r in seeded_subset(_labelled_pairs(data_dir), 3):
        s, t = _pair_agreement(data_dir, r)
        same, total = same + s, total + t
    print(f"label reference reproduced: {same}/{total}")  # shown with -s
    assert total > 200
    assert same / total >= 0.86


@pytest.mark.slow
def test_label_reference_is_reproduced_on_all_labelled_pairs(data_dir: Path) -> None:
    same = total = 0
    for r in _labelled_pairs(data_dir):
        s, t = _pair_agreement(data_dir, r)
        same, total = same + s, total + t
    assert same / total >= 0.9


def test_point_match_is_one_to_one_within_the_radius() -> None:
    ref = [OrientedBox.make(0, 0, 40, 30, 0), OrientedBox.make(100, 0, 40, 30, 0)]
    found = [
        OrientedBox.make(5, 0, 40, 30, 0),  # hits ref 0
        OrientedBox.make(-8, 0, 40, 30, 0),  # duplicate near ref 0: no second hit
        OrientedBox.make(100, 25, 40, 30, 0),  # 25 px from ref 1: outside 20 px
        OrientedBox.make(300, 0, 40, 30, 0),  # far from everything
    ]
    m = point_match(found, ref, 20.0)
    assert (m.found_hit, m.found, m.ref_hit, m.ref) == (1, 4, 1, 2)
    assert m.precision == 0.25 and m.recall == 0.5
    both = m + point_match(found[2:3], ref[1:], 30.0)
    assert (both.found_hit, both.found, both.ref_hit, both.ref) == (2, 5, 2, 3)
    empty = point_match([], ref, 20.0)
    assert empty.recall == 0.0 and np.isnan(empty.precision)
