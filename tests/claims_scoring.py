"""Scoring claim extraction against hand-labelled sentences (per-field precision and recall).

Used by ``tests/test_claims_extraction.py`` and runnable to print the tables of docs/assess.md:
``PYTHONPATH=src python tests/claims_scoring.py``.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from sitewatch.assess.claims import extract_claims
from sitewatch.assess.vocabulary import Vocabulary, build_vocabulary
from sitewatch.errors import ClaimsError

DATA = Path(__file__).parent / "data"
TUNING = DATA / "claims_sentences.yaml"
HELDOUT = DATA / "claims_heldout.yaml"
FIELDS = ("types", "unresolved", "counts", "states", "places", "dates", "attributions", "speakers")
#: z of the two-sided 95 % interval.
Z95 = 1.959964


def norm_name(a: str) -> str:
    """Case-folded, whitespace-collapsed, a leading "the" dropped: names compare exactly after this."""
    a = " ".join(a.lower().split())
    return a[4:] if a.startswith("the ") else a


def wilson_half_width(k: int, n: int, z: float = Z95) -> float:
    """Half the width of the Wilson score interval for k successes in n trials (0 for n = 0)."""
    if n == 0:
        return 0.0
    p = k / n
    return z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def load(path: Path, key: str = "sentences") -> tuple[list[list[dict[str, Any]]], Vocabulary, datetime]:
    """Labelled items of one section of a file: each item a list of labelled sentences read together."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    sites = [SimpleNamespace(**s) for s in data["sites"]]
    pub = data["published"]
    published = pub if isinstance(pub, datetime) else datetime.fromisoformat(str(pub))
    items = [s.get("passage", [s]) for s in data.get(key) or []]
    return items, build_vocabulary(sites=sites), published


def _want(sentence: dict[str, Any], field: str) -> list:
    want = sentence.get(field) or []
    if field == "counts":
        return [tuple(x) for x in want]
    if field == "dates":
        return [str(x) for x in want]
    if field == "attributions":
        return [norm_name(x) for x in want]
    if field == "speakers":
        return [(norm_name(n), norm_name(r)) for n, r in want]
    return list(want)


def _got(claims: list) -> dict[str, list]:
    out: dict[str, list] = {f: [] for f in FIELDS}
    for c in claims:
        out["types"] += [m["type_id"] for m in c.equipment if m["type_id"]]
        out["unresolved"] += c.unresolved
        out["counts"] += [(m["count"]["min"], m["count"]["max"]) for m in c.equipment if m["count"]]
        out["states"] += c.states
        out["places"] += [] if c.place_inherited else c.places
        out["dates"] += [d["date"] for d in c.dates if d["date"]]
        out["attributions"] += [norm_name(a) for a in c.attributions]
        speaker = getattr(c, "speaker", None)
        if speaker:
            out["speakers"].append((norm_name(speaker), norm_name(getattr(c, "speaker_role", None) or "")))
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _sentence_of(claim_text: str, sentences: list[dict[str, Any]]) -> int:
    """Index of the labelled sentence a claim's sentence is (the sentencizer may move quote marks)."""
    k = _key(claim_text)
    for i, s in enumerate(sentences):
        if k and (k in _key(s["text"]) or _key(s["text"]) in k):
            return i
    words = set(claim_text.lower().split())
    return max(range(len(sentences)), key=lambda i: len(words & set(sentences[i]["text"].lower().split())))


def measure(items: list[list[dict[str, Any]]], vocab: Vocabulary, published: datetime) -> dict[str, tuple[int, int, int]]:
    """Per field: (true positives, extracted, expected); each labelled sentence scored on its own claims."""
    totals = {f: [0, 0, 0] for f in FIELDS}
    for sentences in items:
        text = " ".join(s["text"] for s in sentences)
        try:
            claims = extract_claims(text, source="labelled", published=published, vocabulary=vocab)
        except ClaimsError:  # refused (e.g. too few stopwords in one short sentence): nothing extracted
            claims = []
        per: list[list] = [[] for _ in sentences]
        for c in claims:
            per[_sentence_of(c.text, sentences)].append(c)
        for s, cs in zip(sentences, per, strict=True):
            got = _got(cs)
            for f in FIELDS:
                want = _want(s, f)
                totals[f][0] += len(set(got[f]) & set(want))
                totals[f][1] += len(got[f])
                totals[f][2] += len(want)
    return {f: (v[0], v[1], v[2]) for f, v in totals.items()}


def table(scores: dict[str, tuple[int, int, int]]) -> str:
    """Markdown table: TP, extracted, expected, precision and recall with their 95 % Wilson half-widths."""
    lines = ["| field | TP | extracted | expected | precision ± 95 % | recall ± 95 % |", "|---|---|---|---|---|---|"]
    for f, (tp, n_got, n_want) in scores.items():
        p = tp / n_got if n_got else 1.0
        r = tp / n_want if n_want else 1.0
        lines.append(f"| {f} | {tp} | {n_got} | {n_want} | {p:.2f} ± {wilson_half_width(tp, n_got):.2f} "
                     f"| {r:.2f} ± {wilson_half_width(tp, n_want):.2f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    for name, path, key in (("tuning set, original sentences", TUNING, "sentences"),
                            ("tuning set, added sentences", TUNING, "added_sentences"),
                            ("held-out set", HELDOUT, "sentences")):  # fmt: skip
        items, vocab, pub = load(path, key)
        n = sum(len(i) for i in items)
        print(f"\n{name} ({path.name}, {n} sentences)\n{table(measure(items, vocab, pub))}")
