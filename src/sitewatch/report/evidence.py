"""Evidence entries: what each footnote of a report cites, resolved from the later stages' references.

References come from the compare, assess and claims stages as strings (``"pass:3"``,
``"det:12"``, ``"comparison:3-5"``, ``"claim:<id>"``) or mappings; :class:`EvidenceBook` turns each
into an :class:`~sitewatch.report.model.EvidenceEntry` that names the pass id and date, the
detections, the comparison or the claim and its source, or records it as unresolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sitewatch.identify.hierarchy import label_detection
from sitewatch.report.model import ComparisonSummary, EvidenceEntry, PassSummary
from sitewatch.types import Detection

if TYPE_CHECKING:
    from sitewatch.assess import Claim, IndicatorResult


def _field(ref: Any, name: str) -> Any:
    """Key ``name`` of a mapping reference, or attribute ``name`` of an object reference; None if absent."""
    if isinstance(ref, Mapping):
        return ref.get(name)
    return getattr(ref, name, None)


class EvidenceBook:
    """Evidence entries created on first citation, keyed by what they cite.

    Keys: ``pass-<id>``, ``det-<id>``, ``cmp-<pass a>-<pass b>``, ``claim-<id>``, ``ind-<name>``.
    Claims and indicators must be registered (:attr:`claims`, :attr:`indicators`) before they
    can be cited.
    """

    def __init__(
        self, passes: Sequence[PassSummary], detections: Mapping[int, tuple[Detection, PassSummary]]
    ) -> None:
        self.passes = {p.id: p for p in passes if p.id is not None}
        self.detections = detections
        self.comparisons: dict[tuple[int, int], ComparisonSummary] = {}
        self.claims: dict[str, Claim] = {}
        self.indicators: dict[str, IndicatorResult] = {}
        self._resolving: set[str] = set()
        self.entries: dict[str, EvidenceEntry] = {}
        self.unresolved: list[str] = []

    def _add(self, entry: EvidenceEntry) -> str:
        self.entries.setdefault(entry.key, entry)
        return entry.key

    def cite_pass(self, pass_id: int) -> str | None:
        p = self.passes.get(pass_id)
        if p is None:
            return None
        sim = " SIMULATED" if p.simulated else ""
        text = f"Pass {p.label} (id {p.id}, {p.date}{sim}): {p.n_detections} detections, {p.scene_path}"
        return self._add(EvidenceEntry(key=f"pass-{p.id}", kind="pass", text=text, pass_ids=[p.id]))

    def cite_detection(self, det_id: int) -> str | None:
        hit = self.detections.get(det_id)
        if hit is None:
            return None
        d, p = hit
        label = label_detection(d)
        ident = f", {label.describe()}" if d.candidates else ""
        size = f", {d.measurement.length_m:.1f} x {d.measurement.width_m:.1f} m" if d.measurement else ""
        text = (
            f"Detection {det_id}: {d.category}{ident}{size}, score {d.score:.2f}, in pass {p.label} (id "
            f"{p.id}, {p.date})"
        )
        return self._add(
            EvidenceEntry(
                key=f"det-{det_id}", kind="detection", text=text, pass_ids=[p.id], detection_ids=[det_id]
            )
        )

    def cite_comparison(self, a: int, b: int) -> str | None:
        c = self.comparisons.get((a, b))
        if c is None:
            return None
        text = (
            f"Comparison {c.label}: pass id {a} ({c.date_a}) → pass id {b} ({c.date_b}). {c.sentence}".strip()
        )
        return self._add(
            EvidenceEntry(
                key=f"cmp-{a}-{b}", kind="comparison", text=text, pass_ids=[a, b], comparison=c.label
            )
        )

    def cite_claim(self, claim_id: str | int) -> str | None:
        claim_id = str(claim_id)
        c = self.claims.get(claim_id)
        if c is None:
            return None
        source = c.source or "unknown source"
        when = f", published {c.published.date().isoformat()}" if c.published else ""
        text = f"Claim {claim_id} ({source}{when}): \u201c{c.text}\u201d"
        return self._add(
            EvidenceEntry(key=f"claim-{claim_id}", kind="claim", text=text, claim_id=claim_id, source=source)
        )

    def cite_indicator(self, name: str) -> str | None:
        """An indicator outcome; the entry carries the passes and detections its own evidence names."""
        ind = self.indicators.get(name)
        key = f"ind-{name}"
        if ind is None:
            return None
        if key in self.entries or key in self._resolving:
            return key
        self._resolving.add(key)
        subs = [self.entries[k] for k in self.cite_all(ind.evidence)]
        self._resolving.discard(key)
        text = f"Indicator {ind.title or name}: {ind.state}. {ind.sentence or ind.reason}".strip()
        return self._add(
            EvidenceEntry(
                key=key,
                kind="indicator",
                text=text,
                pass_ids=sorted({i for e in subs for i in e.pass_ids}),
                detection_ids=sorted({i for e in subs for i in e.detection_ids}),
            )
        )

    _REF = re.compile(r"^\s*([a-z]+)\s*[:#\s_-]?\s*(\S.*?)\s*$", re.I)
    _PAIR = re.compile(r"^(\d+)\s*(?:->|→|-|_|,|\.\.)\s*(\d+)$")

    def _cite_text(self, kind: str, rest: str) -> str | None:
        kind = kind.lower()
        if kind in ("comparison", "cmp", "c"):
            m = self._PAIR.match(rest)
            return self.cite_comparison(int(m.group(1)), int(m.group(2))) if m else None
        if kind in ("claim", "cl"):
            return self.cite_claim(rest)
        if kind in ("indicator", "ind"):
            return self.cite_indicator(rest)
        if not rest.isdigit():
            return None
        if kind in ("pass", "p"):
            return self.cite_pass(int(rest))
        if kind in ("detection", "det", "d"):
            return self.cite_detection(int(rest))
        return None

    def cite(self, ref: Any) -> list[str]:
        """Resolve one evidence reference from a later stage into evidence keys.

        Accepts strings (``"pass:3"``, ``"det:12"``, ``"detection 12"``, ``"comparison:3-5"``,
        ``"claim:<id>"``, ``"indicator:<name>"``) and mappings (``{"kind": "pass", "id": 3}``, ``{"pass_id":
        3, "detection_ids": [...]}``, ``{"claim_id": "..."}``, ``{"pass_a": 3, "pass_b": 5}``). Unresolvable
        references are recorded in :attr:`unresolved` and produce no key.
        """
        keys: list[str | None] = []
        if isinstance(ref, str):
            m = self._REF.match(ref)
            keys.append(self._cite_text(m.group(1), m.group(2)) if m else None)
        elif isinstance(ref, Mapping) or hasattr(ref, "__dict__") or hasattr(ref, "__slots__"):
            keys.extend(self._cite_structured(ref))
        else:
            keys.append(None)
        if not keys or any(k is None for k in keys):
            self.unresolved.append(str(ref))
        return [k for k in keys if k is not None]

    def _cite_structured(self, ref: Any) -> list[str | None]:
        kind = str(_field(ref, "kind") or _field(ref, "type") or "").lower()
        rid = _field(ref, "id")
        out: list[str | None] = []
        if kind in ("pass", "detection", "claim") and rid is not None:
            return [self._cite_text(kind, str(rid))]
        if _field(ref, "pass_a") is not None and _field(ref, "pass_b") is not None:
            out.append(self.cite_comparison(int(_field(ref, "pass_a")), int(_field(ref, "pass_b"))))
        for d in _field(ref, "detection_ids") or (
            [_field(ref, "detection_id")] if _field(ref, "detection_id") is not None else []
        ):
            out.append(self.cite_detection(int(d)))
        pid = _field(ref, "pass_id")
        if pid is not None and not out:
            out.append(self.cite_pass(int(pid)))
        if _field(ref, "claim_id") is not None:
            out.append(self.cite_claim(str(_field(ref, "claim_id"))))
        return out

    def cite_all(self, refs: Iterable[Any]) -> list[str]:
        keys: list[str] = []
        for r in refs or ():
            keys.extend(k for k in self.cite(r) if k not in keys)
        return keys
