"""Claim extraction measured on hand-labelled sentences: the tuning set and a held-out set.

``tests/data/claims_sentences.yaml`` (the original 35 sentences and 24 added ones) was used while
writing the rules; ``tests/data/claims_heldout.yaml`` (40 sentences) was written before the rules
for its shapes and is never used to tune them. Names (attributions, speakers) must match exactly
(case-insensitive, a leading "the" ignored).

Floors: each field's precision and recall must reach the value measured when the rules were last
changed (``MEASURED``: true positives / extracted / expected) minus the half-width of that value's
95 % Wilson score interval, so a floor moves with the evidence behind it, not by hand. The
measured figures are in docs/assess.md (``PYTHONPATH=src python tests/claims_scoring.py``).
"""

from __future__ import annotations

import pytest
from tests.claims_scoring import FIELDS, HELDOUT, TUNING, load, measure, wilson_half_width

#: set -> field -> (true positives, extracted, expected), measured with the current rules.
MEASURED: dict[str, dict[str, tuple[int, int, int]]] = {
    "original": {"types": (25, 25, 25), "unresolved": (2, 2, 2), "counts": (25, 25, 25), "states": (25, 25, 28),
                 "places": (27, 27, 27), "dates": (21, 21, 23), "attributions": (28, 29, 29), "speakers": (0, 0, 0)},
    "added": {"types": (7, 7, 7), "unresolved": (0, 0, 0), "counts": (11, 11, 11), "states": (14, 14, 17),
              "places": (13, 13, 13), "dates": (9, 9, 9), "attributions": (24, 24, 24), "speakers": (15, 15, 15)},
    "held-out": {"types": (16, 16, 16), "unresolved": (1, 1, 1), "counts": (21, 22, 22), "states": (25, 27, 34),
                 "places": (27, 27, 27), "dates": (20, 20, 21), "attributions": (32, 33, 36), "speakers": (15, 15, 16)},
}  # fmt: skip
SETS = {"original": (TUNING, "sentences"), "added": (TUNING, "added_sentences"), "held-out": (HELDOUT, "sentences")}


def floors(tp: int, n_got: int, n_want: int) -> tuple[float, float]:
    """(precision floor, recall floor): measured value minus its 95 % Wilson half-width."""
    p = tp / n_got if n_got else 1.0
    r = tp / n_want if n_want else 1.0
    return p - wilson_half_width(tp, n_got), r - wilson_half_width(tp, n_want)


def test_wilson_half_width_matches_known_values():
    # 8/10: Wilson 95 % interval 0.490..0.943 (Newcombe 1998, method 3) -> half-width 0.2265.
    assert wilson_half_width(8, 10) == pytest.approx(0.2265, abs=5e-4)
    assert wilson_half_width(0, 0) == 0.0
    assert floors(25, 25, 25)[0] == pytest.approx(1 - 0.0667, abs=5e-4)


def test_sets_are_big_enough_and_separate():
    tuning = [s["text"] for key in ("sentences", "added_sentences") for item in load(TUNING, key)[0] for s in item]
    heldout = [s["text"] for item in load(HELDOUT)[0] for s in item]
    assert sum(len(item) for item in load(TUNING, "added_sentences")[0]) >= 20
    assert len(heldout) >= 30
    assert not set(tuning) & set(heldout), "a held-out sentence is also in the tuning set"


@pytest.mark.parametrize("name", list(SETS))
def test_per_field_precision_and_recall_meet_floors(name, capsys):
    path, key = SETS[name]
    items, vocab, published = load(path, key)
    scores = measure(items, vocab, published)
    lines = [f"{'field':<13} {'TP':>3} {'extr':>4} {'exp':>4} {'precision':>9} {'floor':>5} {'recall':>6} {'floor':>5}"]
    failures = []
    for f in FIELDS:
        tp, n_got, n_want = scores[f]
        p = tp / n_got if n_got else 1.0
        r = tp / n_want if n_want else 1.0
        fp, fr = floors(*MEASURED[name][f])
        lines.append(f"{f:<13} {tp:>3} {n_got:>4} {n_want:>4} {p:>9.2f} {fp:>5.2f} {r:>6.2f} {fr:>5.2f}")
        if p < fp - 1e-9 or r < fr - 1e-9:
            failures.append(f"{f}: precision {p:.2f} (floor {fp:.2f}), recall {r:.2f} (floor {fr:.2f})")
        # the labels did not change under the measurement: the expected count is part of the record
        assert n_want == MEASURED[name][f][2], f"{name}/{f}: {n_want} labelled items, {MEASURED[name][f][2]} when measured"
    with capsys.disabled():
        print(f"\nclaim extraction, {name} set ({sum(len(i) for i in items)} sentences)\n" + "\n".join(lines))
    assert not failures, failures
