"""The report model: everything a report shows, gathered once, rendered many ways.

:class:`ReportData` is built by :func:`sitewatch.report.builder.build_report_data` from the store
and the compare/assess stages; the HTML, PDF and JSON renderers only read it. Images (chips,
charts, the site map) are held as base64 PNG so a rendered report is one self-contained file;
the JSON twin leaves the pixels out and keeps the facts.

Evidence is the spine of the report: every key judgement, indicator and claim verdict cites
evidence entries by key (``"E1"``, ``"E2"`` ...), and each entry names what it rests on (pass ids
and dates, detection ids, a comparison, a claim and its source). :class:`ReportData` refuses to
exist with a citation that does not resolve.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

#: Object-change statuses, as the compare stage names them, plus ``observed`` for a single pass.
STATUSES: tuple[str, ...] = ("arrived", "departed", "remained", "moved", "observed")

EvidenceKind = Literal["pass", "detection", "comparison", "claim", "indicator", "note"]


def png_base64(png: bytes) -> str:
    """PNG bytes as the base64 text the model's ``png_b64`` fields hold."""
    return base64.b64encode(png).decode("ascii")


class SiteInfo(BaseModel):
    """The watched site. Geometries are WGS84 lon/lat WKT."""

    name: str
    title: str
    kind: str | None = None
    country: str | None = None
    aliases: list[str] = Field(default_factory=list)
    notes: str | None = None
    sources: list[str] = Field(default_factory=list)
    aoi_wkt: str | None = None
    zones: dict[str, str] = Field(default_factory=dict)


class PassSummary(BaseModel):
    """One stored pass, as the report describes it.

    Attributes:
        label: short label used in tables and footnotes (``"P1"`` oldest).
        gsd_m: metres per pixel, or None.
        aoi_coverage: fraction of the site's AOI the scene observed with valid pixels (the image outline's
            share for passes stored before that was measured), 0..1; None when unknown (pixel-space pass).
        detection_ids: store ids of its detections (what footnotes may cite).
    """

    id: int | None
    label: str
    acquired: datetime | None = None
    scene_path: str
    gsd_m: float | None = None
    model: str
    crs: str | None = None
    georeferenced: bool = False
    simulated: bool = False
    aoi_coverage: float | None = None
    platform: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    detection_ids: list[int] = Field(default_factory=list)

    @property
    def date(self) -> str:
        """Acquisition date as ``YYYY-MM-DD`` (or ``undated``)."""
        return self.acquired.strftime("%Y-%m-%d") if self.acquired else "undated"

    @property
    def n_detections(self) -> int:
        return sum(self.counts.values())


class InventoryRow(BaseModel):
    """Counts of one category/role/identification group in each pass (``counts`` aligned with
    ``ReportData.passes``).

    ``type_name`` is the detections' label (:func:`sitewatch.identify.label_detection`): a type,
    family, role or size class, whichever is the most specific level reaching the label
    threshold; ``level`` says which (``"category"`` for unidentified).
    """

    category: str
    role: str
    type_name: str
    counts: list[int]
    level: str = ""


class ObjectChangeRow(BaseModel):
    """One matched or unmatched object between two passes (ids are store detection ids)."""

    status: str
    category: str
    group: str | None = None
    zone: str | None = None
    det_a: int | None = None
    det_b: int | None = None
    displacement_m: float | None = None


class ComparisonSummary(BaseModel):
    """What changed between two passes (``pass_a`` older, ``pass_b`` newer; pass ids)."""

    label: str
    pass_a: int | None
    pass_b: int | None
    date_a: str
    date_b: str
    sentence: str = ""
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    registration: dict[str, Any] = Field(default_factory=dict)
    pixel_change: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    objects: list[ObjectChangeRow] = Field(default_factory=list)

    def changed_counts(self) -> dict[str, dict[str, int]]:
        """``counts`` of the categories with any arrived/departed/remained/moved object."""
        keys = ("arrived", "departed", "remained", "moved")
        return {c: v for c, v in self.counts.items() if any(v.get(k, 0) for k in keys)}


class EvidenceEntry(BaseModel):
    """One citable piece of evidence.

    Attributes:
        key: citation key (``"E1"`` ...), the anchor footnotes link to.
        kind: what it is.
        text: one line describing it (pass id + date, detections, comparison, claim and source).
        pass_ids, detection_ids: store ids it rests on.
        comparison: label of the comparison (``"C1"``), if any.
        claim_id: id of the claim, if any.
        source: the document a claim came from, if any.
    """

    key: str
    kind: EvidenceKind
    text: str
    pass_ids: list[int] = Field(default_factory=list)
    detection_ids: list[int] = Field(default_factory=list)
    comparison: str | None = None
    claim_id: str | None = None
    source: str | None = None


class Judgement(BaseModel):
    """A key judgement in estimative language with the evidence keys it is footnoted to."""

    text: str
    evidence: list[str] = Field(default_factory=list)


class HypothesisRow(BaseModel):
    """One competing hypothesis: ``probability`` 0..1 and its estimative term (e.g. ``"likely"``)."""

    name: str
    description: str = ""
    score: float | None = None
    probability: float | None = None
    term: str = ""


class AchRow(BaseModel):
    """One item of evidence against every hypothesis: ``cells`` are CC/C/N/I/II aligned with the
    hypotheses."""

    evidence: str
    weight: float = 1.0
    cells: list[str]
    evidence_keys: list[str] = Field(default_factory=list)


class IndicatorRow(BaseModel):
    """One indicator and whether it fired."""

    name: str
    fired: bool
    state: str = ""
    description: str = ""
    evidence: list[str] = Field(default_factory=list)


class AssessmentSection(BaseModel):
    """The assessment as reported. ``unassessable`` lists what the data cannot support, in plain words."""

    available: bool = False
    judgements: list[Judgement] = Field(default_factory=list)
    confidence: str | None = None
    confidence_reasons: list[str] = Field(default_factory=list)
    hypotheses: list[HypothesisRow] = Field(default_factory=list)
    ach_hypotheses: list[str] = Field(default_factory=list)
    ach_rows: list[AchRow] = Field(default_factory=list)
    indicators: list[IndicatorRow] = Field(default_factory=list)
    unassessable: list[str] = Field(default_factory=list)


class ClaimRow(BaseModel):
    """A claim from an open-source text and the imagery's verdict on it."""

    id: str | None = None
    source: str = ""
    published: datetime | None = None
    text: str
    verdict: str
    note: str = ""
    evidence: list[str] = Field(default_factory=list)


class ChipImage(BaseModel):
    """One annotated crop of a pass scene (PNG, base64)."""

    pass_id: int | None
    pass_label: str
    date: str
    png_b64: str = Field(repr=False)
    detection_ids: list[int] = Field(default_factory=list)
    colours: dict[str, str] = Field(default_factory=dict)


class ChipPair(BaseModel):
    """Before/after crops around the same ground (``before`` is None for a single-pass report)."""

    title: str
    caption: str = ""
    statuses: dict[str, int] = Field(default_factory=dict)
    before: ChipImage | None = None
    after: ChipImage | None = None


class Figure(BaseModel):
    """A chart or map (PNG, base64)."""

    key: str
    title: str
    caption: str = ""
    png_b64: str = Field(repr=False)


class ReportData(BaseModel):
    """Everything a report shows; see the module docstring.

    Raises:
        pydantic.ValidationError: a judgement, indicator, claim or ACH row cites an evidence key
            that does not exist, or an evidence entry cites a pass/detection the report does not hold.
    """

    title: str
    generated: datetime
    sitewatch_version: str
    site: SiteInfo
    period: str | None = None
    passes: list[PassSummary] = Field(default_factory=list)
    inventory: list[InventoryRow] = Field(default_factory=list)
    comparisons: list[ComparisonSummary] = Field(default_factory=list)
    assessment: AssessmentSection = Field(default_factory=AssessmentSection)
    claims: list[ClaimRow] = Field(default_factory=list)
    evidence: list[EvidenceEntry] = Field(default_factory=list)
    chips: list[ChipPair] = Field(default_factory=list)
    figures: list[Figure] = Field(default_factory=list)
    method: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)

    @property
    def simulated(self) -> bool:
        """True when any pass is simulated imagery."""
        return any(p.simulated for p in self.passes)

    def evidence_index(self) -> dict[str, int]:
        """Footnote number (1-based) of each evidence key."""
        return {e.key: i + 1 for i, e in enumerate(self.evidence)}

    def figure(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    def citations(self) -> list[str]:
        """Every evidence key cited anywhere in the report."""
        keys = [k for j in self.assessment.judgements for k in j.evidence]
        keys += [k for i in self.assessment.indicators for k in i.evidence]
        keys += [k for r in self.assessment.ach_rows for k in r.evidence_keys]
        keys += [k for c in self.claims for k in c.evidence]
        return keys

    @model_validator(mode="after")
    def _citations_resolve(self) -> ReportData:
        known = {e.key for e in self.evidence}
        if len(known) != len(self.evidence):
            raise ValueError("duplicate evidence keys")
        missing = sorted(set(self.citations()) - known)
        if missing:
            raise ValueError(f"citations without an evidence entry: {', '.join(missing)}")
        pass_ids = {p.id for p in self.passes if p.id is not None}
        det_ids = {d for p in self.passes for d in p.detection_ids}
        for e in self.evidence:
            if set(e.pass_ids) - pass_ids:
                raise ValueError(
                    f"evidence {e.key} cites passes not in the report: {sorted(set(e.pass_ids) - pass_ids)}"
                )
            if set(e.detection_ids) - det_ids:
                raise ValueError(
                    f"evidence {e.key} cites detections not in the report: "
                    f"{sorted(set(e.detection_ids) - det_ids)}"
                )
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The machine-readable twin: all facts, no pixels (image data replaced by their descriptions)."""
        return self.model_dump(
            mode="json",
            exclude={
                "figures": {"__all__": {"png_b64"}},
                "chips": {"__all__": {"before": {"png_b64"}, "after": {"png_b64"}}},
            },
        ) | {"simulated": self.simulated, "evidence_footnotes": self.evidence_index()}
