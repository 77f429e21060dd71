"""The assessment of one site: indicators, claims checked, hypotheses weighed, key judgements.

:func:`assess_site` is the stage's entry point; :class:`Assessment` is what report and API read
(``to_dict()`` is its machine-readable twin). Every key judgement lists the evidence references
it rests on, and :attr:`Assessment.evidence` describes every reference used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitewatch.assess import _comparison as cmp
from sitewatch.assess.claims import (
    Claim,
    ClaimCheck,
    check_claims,
    find_conflicts,
    find_dependencies,
    reliability_weight,
)
from sitewatch.assess.estimative import confidence_level
from sitewatch.assess.hypotheses import (
    CLAIM_STRENGTH,
    VERDICT_FACTOR,
    EvidenceItem,
    Hypothesis,
    HypothesisResult,
    load_hypotheses,
    weigh,
)
from sitewatch.assess.indicators import Indicator, IndicatorResult, evaluate, load_indicators
from sitewatch.assess.metrics import Context
from sitewatch.detect import reliability as detector_reliability
from sitewatch.identify import IdentifySettings
from sitewatch.identify.hierarchy import identification_sentence, label_detection
from sitewatch.types import Pass

SCHEMA_VERSION = 1


@dataclass(slots=True)
class Assessment:
    """The assessment of one site.

    Attributes:
        site: site name.
        generated: when the assessment was made (UTC).
        passes: ids and dates of the passes used.
        indicators: every indicator's result (fired, not-fired, not-assessable).
        claims: the claims considered; checks: what imagery says about each; conflicts: claim pairs
            that cannot both be true (both claims kept).
        hypotheses: weighed hypotheses, most likely first (probability, ICD 203 term).
        ach_matrix: ``{"hypotheses": [names], "rows": [EvidenceItem dicts]}``.
        confidence: ``{"level": low|moderate|high, "reasons": [...], "sentence": str}``.
        key_judgements: ``[{"text", "evidence": [refs]}]``.
        not_assessable: what cannot be assessed and why.
        evidence: reference -> short description, for every reference used.
    """

    site: str
    generated: datetime
    passes: list[dict[str, Any]]
    indicators: list[IndicatorResult]
    claims: list[Claim]
    checks: list[ClaimCheck]
    conflicts: list[dict[str, Any]]
    hypotheses: list[HypothesisResult]
    ach_matrix: dict[str, Any]
    confidence: dict[str, Any]
    key_judgements: list[dict[str, Any]]
    not_assessable: list[str] = field(default_factory=list)
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)

    @property
    def fired(self) -> list[IndicatorResult]:
        return [i for i in self.indicators if i.state == "fired"]

    @property
    def most_likely(self) -> HypothesisResult | None:
        return self.hypotheses[0] if self.hypotheses else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (schema version :data:`SCHEMA_VERSION`)."""
        return {
            "schema": SCHEMA_VERSION,
            "site": self.site,
            "generated": self.generated.isoformat(),
            "passes": list(self.passes),
            "key_judgements": [dict(k) for k in self.key_judgements],
            "confidence": dict(self.confidence),
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "ach_matrix": self.ach_matrix,
            "indicators": [i.to_dict() for i in self.indicators],
            "claims": [c.to_dict() for c in self.claims],
            "claim_checks": [c.to_dict() for c in self.checks],
            "conflicts": [dict(c) for c in self.conflicts],
            "dependencies": [dict(d) for d in self.dependencies],
            "not_assessable": list(self.not_assessable),
            "evidence": dict(self.evidence),
        }


def _site_name(site: Any) -> str:
    return site if isinstance(site, str) else site.name


def _evidence_index(
    site_passes: list[Pass], comparisons: list[Any], claims: list[Claim], indicators: list[IndicatorResult]
) -> dict[str, str]:
    idx: dict[str, str] = {}
    for p in site_passes:
        idx[f"pass:{p.id}"] = (
            f"pass {p.id} of {p.acquired.date() if p.acquired else 'unknown date'} ({p.scene_path})"
        )
        for d in p.detections:
            if d.id is not None:
                best = f" ({label_detection(d).describe()})" if d.candidates else ""
                idx[f"det:{d.id}"] = f"{d.category}{best} in pass {p.id}, score {d.score:.2f}"
    for c in comparisons:
        a, b = cmp.pass_ids(c)
        idx[cmp.ref(c)] = f"comparison of pass {a} with pass {b}"
    for c in claims:
        idx[c.ref] = f'{c.source}{" (" + c.reliability + ")" if c.reliability else ""}: "{c.text}"'
    for i in indicators:
        idx[i.ref] = f"indicator {i.name}: {i.sentence or i.reason}"
    return idx


def _evidence_items(indicators: list[IndicatorResult], claims: list[Claim], checks: dict[str, ClaimCheck],
                    hypotheses: list[Hypothesis], weak_indicators: Iterable[str] = (),
                    dependencies: Sequence[dict[str, Any]] = ()) -> list[EvidenceItem]:  # fmt: skip
    items = []
    # Possibly dependent reports (one story retold) share one report's weight: k of them weigh 1/k each.
    with_signal = {c.id for c in claims if c.signal}
    share = {}
    for d in dependencies:
        members = [i for i in d["claims"] if i in with_signal]
        share.update({i: len(members) for i in members})
    weak = set(weak_indicators)
    for r in indicators:
        if r.state != "fired":
            continue
        scores = {h.name: h.indicators.get(r.name, "N") for h in hypotheses}
        # An indicator resting on weak detections counts as a source whose reliability cannot be judged (F).
        rel = reliability_weight("F") if r.name in weak else 1.0
        items.append(
            EvidenceItem(r.ref, "indicator", r.sentence or r.title, r.strength, rel, scores, list(r.evidence))
        )
    for c in claims:
        if not c.signal:
            continue
        check = checks.get(c.id)
        verdict = check.verdict if check else None
        rel = reliability_weight(c.reliability) * VERDICT_FACTOR[verdict]
        scores = {h.name: h.claims.get(c.signal, "N") for h in hypotheses}
        refs = list(check.evidence) if check else [c.ref]
        title = f"{c.source}: {c.text}" + (f" [{verdict}]" if verdict else "")
        k = share.get(c.id, 1)
        if k > 1:
            title += f" [possibly dependent: one of {k} similar reports]"
        items.append(EvidenceItem(c.ref, "claim", title, CLAIM_STRENGTH / k, rel, scores, refs))
    return items


def _indicator_categories(ind: Indicator) -> set[str]:
    """The detection categories an indicator's conditions filter on (empty: not category-bound)."""
    return {c for cond in ind.conditions for k, v in cond.filters if k == "category" for c in v.split("|")}


def _weak_indicators(
    fired: list[IndicatorResult], defs: list[Indicator], weak: dict[str, str]
) -> dict[str, set[str]]:
    """Fired indicators that rest only on categories the detector is weak on → those categories."""
    by_name = {d.name: d for d in defs}
    out = {}
    for r in fired:
        used = _indicator_categories(by_name[r.name]) if r.name in by_name else set()
        if used and used <= set(weak):
            out[r.name] = used
    return out


def _weak_evidence(weak_inds: dict[str, set[str]], weak: dict[str, str]) -> str | None:
    """The confidence reason for indicators resting on weak categories, or None."""
    if not weak_inds:
        return None
    cats = set().union(*weak_inds.values())
    whys = "; ".join(f"{c}: {weak[c]}" for c in sorted(cats))
    n = len(weak_inds)
    return (
        f"{', '.join(weak_inds)} rest{'s' if n == 1 else ''} on detections of categories the detector is "
        f"weak on ({whys})"
    )


def _confidence(site_passes: list[Pass], comparisons: list[Any], fired: list[IndicatorResult],
                checks: list[ClaimCheck], conflicts: list[dict[str, Any]], weak_evidence: str | None = None,
                dependencies: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
    points, reasons = 0, []
    n = len(site_passes)
    if n >= 3:
        points += 1
        reasons.append(f"{n} passes over time")
    elif n <= 1:
        points -= 1
        reasons.append("a single pass: no change over time can be seen")
    else:
        reasons.append("only two passes")
    if len(fired) >= 2:
        points += 1
        reasons.append(f"{len(fired)} independent indicators fired")
    # possibly dependent reports (one story retold) count once
    group = {i: g for g, d in enumerate(dependencies) for i in d["claims"]}
    corroborated = len({group.get(c.claim_id, c.claim_id) for c in checks if c.verdict == "corroborated"})
    if corroborated:
        points += 1
        reasons.append(f"{corroborated} text claim(s) corroborated by imagery")
    cov = [p.seen_coverage for p in site_passes if p.seen_coverage is not None]
    if cov and min(cov) >= 0.9 and not any(p.simulated for p in site_passes):
        points += 1
        reasons.append("full coverage of the site in every pass")
    elif any(p.simulated for p in site_passes):
        points -= 1
        reasons.append("some imagery is simulated")
    elif cov:
        reasons.append(f"partial coverage (worst pass {min(cov):.0%} of the site)")
    contradicted = sum(c.verdict == "contradicted" for c in checks)
    if contradicted or conflicts:
        points -= 1
        pairs = {frozenset(group.get(i, i) for i in cf["claims"]) for cf in conflicts}
        reasons.append(
            f"{contradicted} claim(s) contradicted by imagery, {len(pairs)} conflicting report pair(s)"
        )
    poor = [q for q in (cmp.registration_quality(c) for c in comparisons) if q is not None and q < 0.5]
    if poor:
        points -= 1
        reasons.append(f"{len(poor)} comparison(s) with poor co-registration")
    if weak_evidence:
        points -= 1
        reasons.append(weak_evidence)
    level = confidence_level(points)
    sentence = f"We have {level} confidence in these judgements: " + "; ".join(reasons) + "."
    return {"level": level, "points": points, "reasons": reasons, "sentence": sentence}


def _support(h: HypothesisResult, items: list[EvidenceItem], site_passes: list[Pass]) -> list[str]:
    refs: list[str] = []
    for e in items:
        if e.scores.get(h.name) in ("C", "CC"):
            refs.append(e.ref)
            refs.extend(r for r in e.refs if r not in refs)
    return refs or [f"pass:{p.id}" for p in site_passes]


def _display_name(site: Any, name: str) -> str:
    """The site's title for sentences, without a closing parenthetical note (a provenance remark such
    as "(real Airbus Pléiades sample pair; ...)"); its slug when it has no title."""
    title = name if isinstance(site, str) else getattr(site, "title", None) or name
    return re.sub(r"\s*\([^()]*\)$", "", title) or name


_VERB = {"corroborated": "corroborates", "contradicted": "contradicts"}


def _judgements(site: str, hyps: list[HypothesisResult], items: list[EvidenceItem],
                fired: list[IndicatorResult], claims: list[Claim], checks: list[ClaimCheck],
                conflicts: list[dict[str, Any]],
                site_passes: list[Pass]) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    if hyps and items:  # no evidence: no judgement (the odds stay equal; said under 'not assessable')
        top = hyps[0]
        out.append({"text": f"It is {top.term} ({top.probability:.0%}) that {top.statement} at {site}.",
                    "evidence": _support(top, items, site_passes), "hypothesis": top.name})  # fmt: skip
        for h in hyps[1:]:
            if h.probability >= 0.2:
                out.append({"text": f"It is {h.term} ({h.probability:.0%}) that {h.statement}.",
                            "evidence": _support(h, items, site_passes), "hypothesis": h.name})  # fmt: skip
    for r in fired:
        out.append({"text": r.sentence or r.title, "evidence": [r.ref, *r.evidence], "indicator": r.name})
    if site_passes:
        latest = site_passes[-1]
        said = identification_sentence(latest.detections)
        if said:
            when = latest.acquired.date().isoformat() if latest.acquired else "date unknown"
            out.append({"text": f"Identified in the latest pass ({when}), each at the most specific level "
                                f"that is at least {IdentifySettings().label_threshold:.0%} probable: {said}",
                        "evidence": [f"pass:{latest.id}",
                                     *(f"det:{d.id}" for d in latest.detections
                                       if d.candidates and d.id is not None)]})  # fmt: skip
    by_id = {c.id: c for c in claims}
    for ch in checks:
        if ch.verdict in ("corroborated", "contradicted"):
            c = by_id[ch.claim_id]
            out.append({"text": f"Imagery {_VERB[ch.verdict]} the report by {c.source} "
                                f"(\"{c.text}\"): {ch.reason}",
                        "evidence": list(ch.evidence), "claim": c.id})  # fmt: skip
    for cf in conflicts:
        out.append(
            {"text": f"Reports conflict: {cf['reason']}.", "evidence": [f"claim:{i}" for i in cf["claims"]]}
        )
    return out


def assess_site(
    site: Any,
    passes: list[Pass],
    comparisons: list[Any],
    claims: Sequence[Claim | dict[str, Any]],
    *,
    indicators: list[Indicator] | None = None,
    hypotheses: list[Hypothesis] | None = None,
    indicator_dirs: list[Path] | None = None,
    now: datetime | None = None,
    weak_categories: dict[str, str] | None = None,
) -> Assessment:
    """Assess one site from its passes, the comparisons between them and text claims about it.

    Args:
        site: the Site (its zones are used by zone indicators) or its name.
        passes: passes of the site (any order; other sites' passes are ignored).
        comparisons: comparisons between consecutive passes (from ``compare_passes``), oldest first.
        claims: claims (objects or their dicts) about the site; claims naming another site are ignored.
        indicators: indicator definitions (default :func:`load_indicators` with ``indicator_dirs``).
        hypotheses: hypotheses (default the bundled set).
        indicator_dirs: extra indicator files or directories.
        now: the assessment time (default now, UTC).
        weak_categories: detection categories the detector finds poorly → why (default: from the
            held-out evaluation carried by the passes' models,
            :func:`sitewatch.detect.reliability.weak_categories`). Fired indicators that rest only
            on such categories lower the confidence and enter the ACH matrix with the reliability of an
            admiralty-F source ("reliability cannot be judged", 0.5).

    Raises:
        IndicatorError: invalid or duplicate indicator definitions.
    """
    name = _site_name(site)
    site_passes = sorted(
        (p for p in passes if p.site == name), key=lambda p: (p.acquired is None, p.acquired or datetime.min)
    )
    cls = [c if isinstance(c, Claim) else Claim.from_dict(c) for c in claims]
    cls = [c for c in cls if c.site in (None, name)]
    defs = indicators if indicators is not None else load_indicators(indicator_dirs)
    hyps = hypotheses if hypotheses is not None else load_hypotheses()
    ctx = Context(site if not isinstance(site, str) else None, site_passes, list(comparisons), cls)
    results = [evaluate(d, ctx) for d in defs]
    checks = check_claims(cls, site_passes, list(comparisons))
    conflicts = find_conflicts(cls)
    dependencies = find_dependencies(cls)
    fired = [r for r in results if r.state == "fired"]
    weak = (
        weak_categories
        if weak_categories is not None
        else detector_reliability.weak_categories(p.model for p in site_passes if p.model)
    )
    weak_inds = _weak_indicators(fired, defs, weak)
    items = _evidence_items(results, cls, {c.claim_id: c for c in checks}, hyps, weak_inds, dependencies)
    weighed = weigh(hyps, items)
    not_assessable = [
        f"{r.title}: {'; '.join(r.missing) or r.reason}" for r in results if r.state == "not-assessable"
    ]
    if len(site_passes) <= 1:
        not_assessable.insert(
            0,
            f"{name}: {len(site_passes)} pass(es); changes over time (comparison-based indicators) cannot "
            "be assessed",
        )
    if not items:
        not_assessable.insert(
            0, f"{name}: no indicator fired and no claim carries a signal; the hypotheses stay at equal odds"
        )
    return Assessment(
        site=name,
        generated=now or datetime.now(UTC),
        passes=[
            {"id": p.id, "acquired": p.acquired.isoformat() if p.acquired else None, "scene": p.scene_path}
            for p in site_passes
        ],
        indicators=results,
        claims=cls,
        checks=checks,
        conflicts=conflicts,
        dependencies=dependencies,
        hypotheses=weighed,
        ach_matrix={"hypotheses": [h.name for h in hyps], "rows": [e.to_dict() for e in items]},
        confidence=_confidence(
            site_passes,
            list(comparisons),
            fired,
            checks,
            conflicts,
            _weak_evidence(weak_inds, weak),
            dependencies,
        ),
        key_judgements=_judgements(
            _display_name(site, name), weighed, items, fired, cls, checks, conflicts, site_passes
        ),
        not_assessable=not_assessable,
        evidence=_evidence_index(site_passes, list(comparisons), cls, results),
    )
