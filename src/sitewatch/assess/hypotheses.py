"""Competing hypotheses weighed ACH-style (Heuer, Analysis of Competing Hypotheses).

Every evidence item (a fired indicator, a claim) is scored against every hypothesis on the
five-point scale CC / C / N / I / II (definitions in ``data/hypotheses.yaml``). The arithmetic:

* each score is a log-likelihood ratio: CC = +2 ln 2, C = + ln 2, N = 0, I = - ln 2, II = -2 ln 2
  (a C doubles the odds of the hypothesis against a neutral one, a CC quadruples them);
* an item's weight ``w`` = its strength (0..1) x its source reliability (imagery 1.0; claims:
  admiralty letter weight x a verdict factor, see :data:`VERDICT_FACTOR`);
* the log-score of hypothesis h is ``sum_e w_e * LLR(score_e,h)``; the probabilities are the
  softmax of the log-scores (uniform prior);
* Heuer's inconsistency count ``sum_e w_e * (1 for I, 2 for II)`` is reported beside them:
  ACH ranks hypotheses by how much evidence argues against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sitewatch.assess.estimative import estimative_term
from sitewatch.assess.metrics import IndicatorError

#: Log-likelihood ratio of each ACH score.
SCORE_LLR: dict[str, float] = {
    "CC": 2 * math.log(2),
    "C": math.log(2),
    "N": 0.0,
    "I": -math.log(2),
    "II": -2 * math.log(2),
}
#: Inconsistency points of each score (Heuer).
SCORE_INCONSISTENCY: dict[str, int] = {"CC": 0, "C": 0, "N": 0, "I": 1, "II": 2}
#: How much a claim counts, by what the imagery said about it (checked claims count fully).
VERDICT_FACTOR: dict[str | None, float] = {
    "corroborated": 1.0, "not-observable": 0.6, "no-imagery": 0.6, "contradicted": 0.2, None: 0.6,
}  # fmt: skip
#: A text claim's base strength: one report weighs half a decisive imagery indicator.
CLAIM_STRENGTH = 0.5


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """A competing hypothesis: name, statement and scores per indicator / claim signal."""

    name: str
    statement: str
    indicators: dict[str, str]
    claims: dict[str, str]

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "") -> Hypothesis:
        """Build from YAML.

        Raises:
            IndicatorError: missing name or a score outside CC/C/N/I/II.
        """
        name = d.get("name")
        if not name:
            raise IndicatorError(f"{origin}: a hypothesis has no name")
        ind = {str(k): str(v) for k, v in (d.get("indicators") or {}).items()}
        cl = {str(k): str(v) for k, v in (d.get("claims") or {}).items()}
        for k, v in [*ind.items(), *cl.items()]:
            if v not in SCORE_LLR:
                raise IndicatorError(
                    f"{origin}: hypothesis '{name}' scores '{k}' as {v!r}; use one of CC, C, N, I, II"
                )
        return cls(str(name), str(d.get("statement", name)), ind, cl)


def load_hypotheses(path: Path | None = None) -> list[Hypothesis]:
    """The hypotheses from ``path`` or the bundled ``data/hypotheses.yaml``.

    Raises:
        IndicatorError: invalid file or duplicate hypothesis name.
    """
    if path is None:
        text, origin = (
            resources.files("sitewatch.assess").joinpath("data/hypotheses.yaml").read_text("utf-8"),
            "hypotheses.yaml",
        )
    else:
        text, origin = Path(path).read_text(encoding="utf-8"), str(path)
    data = yaml.safe_load(text)
    items = data.get("hypotheses") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise IndicatorError(f"{origin}: expected a list under 'hypotheses:'")
    out = [Hypothesis.from_dict(d, origin) for d in items]
    names = [h.name for h in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise IndicatorError(f"{origin}: hypothesis {sorted(dup)[0]!r} is defined twice")
    return out


@dataclass(slots=True)
class EvidenceItem:
    """One row of the ACH matrix.

    Attributes:
        ref: evidence reference (``indicator:<name>`` or ``claim:<id>``).
        kind: "indicator" or "claim".
        title: short description.
        strength: 0..1.
        reliability: 0..1 (imagery 1.0).
        scores: hypothesis name -> CC/C/N/I/II.
        refs: the underlying references (passes, detections, comparisons, claims).
    """

    ref: str
    kind: str
    title: str
    strength: float
    reliability: float
    scores: dict[str, str] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)

    @property
    def weight(self) -> float:
        return self.strength * self.reliability

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, "title": self.title, "strength": round(self.strength, 3),
                "reliability": round(self.reliability, 3), "weight": round(self.weight, 3),
                "scores": dict(self.scores), "refs": list(self.refs)}  # fmt: skip


@dataclass(slots=True)
class HypothesisResult:
    """A hypothesis weighed: log-score, probability, ICD 203 term, inconsistency."""

    name: str
    statement: str
    score: float
    probability: float
    term: str
    inconsistency: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "statement": self.statement, "score": round(self.score, 4),
                "probability": round(self.probability, 4), "term": self.term,
                "inconsistency": round(self.inconsistency, 3)}  # fmt: skip


def weigh(hypotheses: list[Hypothesis], evidence: list[EvidenceItem]) -> list[HypothesisResult]:
    """Log-scores, softmax probabilities and inconsistency counts; most likely first."""
    scores, incons = {}, {}
    for h in hypotheses:
        scores[h.name] = sum(e.weight * SCORE_LLR[e.scores.get(h.name, "N")] for e in evidence)
        incons[h.name] = sum(e.weight * SCORE_INCONSISTENCY[e.scores.get(h.name, "N")] for e in evidence)
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exp.values())
    out = [
        HypothesisResult(
            h.name,
            h.statement,
            scores[h.name],
            exp[h.name] / total,
            estimative_term(exp[h.name] / total),
            incons[h.name],
        )
        for h in hypotheses
    ]
    return sorted(out, key=lambda r: (-r.probability, r.inconsistency))
