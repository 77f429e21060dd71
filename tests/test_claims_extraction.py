"""Claim extraction measured on hand-labelled defence-news sentences (tests/data/claims_sentences.yaml)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sitewatch.assess.claims import extract_claims
from sitewatch.assess.vocabulary import build_vocabulary

LABELS = Path(__file__).parent / "data" / "claims_sentences.yaml"
FIELDS = ("types", "unresolved", "counts", "states", "places", "dates", "attributions")
#: Floors asserted per field (precision, recall); measured values are in docs/assess.md.
FLOORS = {
    "types": (0.9, 0.85),
    "unresolved": (0.9, 0.9),
    "counts": (0.85, 0.8),
    "states": (0.8, 0.7),
    "places": (0.95, 0.9),
    "dates": (0.85, 0.8),
    "attributions": (0.8, 0.75),
}


def _norm_attr(a: str) -> str:
    a = " ".join(a.lower().split())
    return a[4:] if a.startswith("the ") else a


def _extracted(claims: list) -> dict[str, list]:
    out: dict[str, list] = {f: [] for f in FIELDS}
    for c in claims:
        out["types"] += [m["type_id"] for m in c.equipment if m["type_id"]]
        out["unresolved"] += c.unresolved
        out["counts"] += [(m["count"]["min"], m["count"]["max"]) for m in c.equipment if m["count"]]
        out["states"] += c.states
        out["places"] += [] if c.place_inherited else c.places
        out["dates"] += [d["date"] for d in c.dates if d["date"]]
        out["attributions"] += c.attributions
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}


def _match(field: str, got: list, want: list) -> int:
    """Number of true positives (each expected item matched at most once)."""
    if field != "attributions":
        return len(set(got) & set(want))
    left = [_norm_attr(w) for w in want]
    tp = 0
    for g in map(_norm_attr, got):
        hit = next((w for w in left if w == g or w in g or g in w), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    return tp


@pytest.fixture(scope="module")
def labelled():
    data = yaml.safe_load(LABELS.read_text(encoding="utf-8"))
    sites = [SimpleNamespace(**s) for s in data["sites"]]
    published = data["published"] if isinstance(data["published"], datetime) else datetime.fromisoformat(str(data["published"]))
    return data, build_vocabulary(sites=sites), published


def measure(data, vocab, published) -> dict[str, tuple[int, int, int]]:
    """Per field: (true positives, extracted, expected)."""
    totals = {f: [0, 0, 0] for f in FIELDS}
    for s in data["sentences"]:
        got = _extracted(extract_claims(s["text"], source="labelled", published=published, vocabulary=vocab))
        for f in FIELDS:
            want = s.get(f) or []
            if f == "counts":
                want = [tuple(x) for x in want]
            elif f == "dates":
                want = [str(x) for x in want]
            totals[f][0] += _match(f, got[f], want)
            totals[f][1] += len(got[f])
            totals[f][2] += len(want)
    return {f: tuple(v) for f, v in totals.items()}


def test_labelled_set_is_big_enough(labelled):
    data, _, _ = labelled
    assert len(data["sentences"]) >= 30
    for f in FIELDS:
        assert sum(len(s.get(f) or []) for s in data["sentences"]) >= 2, f


def test_per_field_precision_and_recall_meet_floors(labelled, capsys):
    data, vocab, published = labelled
    scores = measure(data, vocab, published)
    lines = [f"{'field':<13} {'TP':>3} {'extr':>4} {'exp':>4} {'precision':>9} {'recall':>6}"]
    failures = []
    for f, (tp, n_got, n_want) in scores.items():
        p = tp / n_got if n_got else 1.0
        r = tp / n_want if n_want else 1.0
        lines.append(f"{f:<13} {tp:>3} {n_got:>4} {n_want:>4} {p:>9.2f} {r:>6.2f}")
        fp, fr = FLOORS[f]
        if p < fp or r < fr:
            failures.append(f"{f}: precision {p:.2f} (floor {fp}), recall {r:.2f} (floor {fr})")
    with capsys.disabled():
        print("\nclaim extraction on", len(data["sentences"]), "labelled sentences\n" + "\n".join(lines))
    assert not failures, failures
