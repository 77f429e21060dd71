"""What a new pass changes: alerts from the assessment before and after it, under a site's rules.

An alert is raised when an indicator starts firing (at or above the rule's minimum strength), stops
firing (``cleared``), or — with ``repeat`` — fires again on a new pass; and when a hypothesis'
estimative term changes (e.g. "roughly even chance" → "likely") with its probability moving by at
least the rule's ``min_probability_change`` (a hypothesis sitting on a term boundary does not flap). Each
alert carries the evidence: the indicator's values and sentence, the counts of the new and previous pass, what
arrived or departed between them, and the report written for the pass.
"""

from __future__ import annotations

from typing import Any

from sitewatch.assess import Assessment
from sitewatch.store.watchstate import NewAlert
from sitewatch.types import Pass
from sitewatch.watch.config import Rules

#: Alert kinds.
FIRED, CLEARED, STILL_FIRING, TERM_CHANGED = (
    "indicator-fired",
    "indicator-cleared",
    "indicator-firing",
    "term-changed",
)


def evidence(new: Pass, previous: Pass | None, comparison: Any, report: str | None) -> dict[str, Any]:
    """The evidence every alert of a pass carries (JSON-ready)."""
    ev: dict[str, Any] = {
        "pass": {
            "id": new.id,
            "scene": new.scene_path,
            "acquired": new.acquired.isoformat() if new.acquired else None,
            "counts": new.counts(),
            "simulated": new.simulated,
        },
        "previous_pass": None,
        "changes": None,
        "report": report,
        "chips": [],
    }
    if previous is not None:
        ev["previous_pass"] = {"id": previous.id, "scene": previous.scene_path,
                               "acquired": previous.acquired.isoformat() if previous.acquired else None,
                               "counts": previous.counts()}  # fmt: skip
    if comparison is not None:
        changed = {
            cat: {k: n for k, n in v.items() if n} for cat, v in comparison.counts.items() if any(v.values())
        }
        ev["changes"] = {
            "sentence": comparison.sentence,
            "counts": changed,
            "warnings": list(comparison.warnings),
        }
    return ev


def alerts_for(
    before: Assessment | None, after: Assessment, rules: Rules, ev: dict[str, Any]
) -> list[NewAlert]:
    """The alerts raised by the change from ``before`` (None: nothing assessed yet) to ``after``.

    Args:
        before: the site's assessment without the new pass.
        after: the site's assessment with it.
        rules: the site's alert rules.
        ev: the pass evidence (:func:`evidence`), copied into every alert.
    """
    site = after.site
    old = {r.name: r for r in (before.indicators if before else [])}
    out: list[NewAlert] = []
    for r in after.indicators:
        if rules.indicators is not None and r.name not in rules.indicators:
            continue
        was = old[r.name].state if r.name in old else "not-assessable"
        payload = {"site": site, "indicator": r.to_dict(), "previous_state": was, "evidence": ev}
        if r.state == "fired" and r.strength >= rules.min_strength and (was != "fired" or rules.repeat):
            kind = FIRED if was != "fired" else STILL_FIRING
            verb = "fires" if was != "fired" else "still fires"
            out.append(
                NewAlert(
                    kind,
                    r.name,
                    f"{site}: {r.title} — indicator {verb} (strength {r.strength:.2f}). {r.sentence}".strip(),
                    payload,
                )
            )
        elif was == "fired" and r.state != "fired" and rules.cleared:
            out.append(
                NewAlert(
                    CLEARED, r.name, f"{site}: {r.title} — indicator no longer fires ({r.state})", payload
                )
            )
    if rules.hypotheses:
        terms = {h.name: h for h in (before.hypotheses if before else [])}
        for h in after.hypotheses:
            prev = terms.get(h.name)
            if (
                prev is None
                or prev.term == h.term
                or abs(h.probability - prev.probability) < rules.min_probability_change
            ):
                continue
            payload = {"site": site, "hypothesis": h.to_dict(), "previous": prev.to_dict(), "evidence": ev}
            out.append(
                NewAlert(
                    TERM_CHANGED,
                    h.name,
                    f"{site}: '{h.statement}' is now {h.term} ({prev.probability:.0%} → "
                    f"{h.probability:.0%}; was {prev.term})",
                    payload,
                )
            )
    return out
