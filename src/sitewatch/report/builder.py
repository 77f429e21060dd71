"""Build the :class:`~sitewatch.report.model.ReportData` of a site from the store and the later stages.

:func:`build_report_data` reads the passes (and claims) from the store, compares consecutive
passes, checks the claims, runs the assessment, and hands everything to
:func:`assemble_report_data`, which turns stage outputs into the report model: evidence entries
with resolved citations, the inventory, chips re-read from the pass scenes, the timeline and the
site map. The report reads the store; it never writes to it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shapely import wkt as shapely_wkt

from sitewatch import __version__
from sitewatch.detect import reliability
from sitewatch.errors import SitewatchError
from sitewatch.identify import IdentifySettings, label_detection
from sitewatch.report import charts, maps
from sitewatch.report.chipsets import (
    SceneCache,
    SceneOpener,
    comparison_chips,
    overview_chips,
    single_pass_chips,
)
from sitewatch.report.evidence import EvidenceBook
from sitewatch.report.model import (
    AchRow,
    AssessmentSection,
    ChipPair,
    ClaimRow,
    ComparisonSummary,
    Figure,
    HypothesisRow,
    IndicatorRow,
    InventoryRow,
    Judgement,
    ObjectChangeRow,
    PassSummary,
    ReportData,
    SiteInfo,
    png_base64,
)
from sitewatch.types import Detection, Pass

if TYPE_CHECKING:
    from sitewatch.assess import Assessment, Claim, ClaimCheck, IndicatorResult
    from sitewatch.compare import Comparison, ObjectChange
    from sitewatch.store import Store
    from sitewatch.store.span import PassSpan

log = logging.getLogger(__name__)

#: How many before/after chip pairs a report shows at most.
MAX_CHIPS = 6
#: Below this AOI coverage a pass is flagged in the limitations.
LOW_COVERAGE = 0.9


# --------------------------------------------------------------------------------------- site, passes


def site_info(site: Any) -> SiteInfo:
    """The report's view of a :class:`sitewatch.sites.Site`.

    ``site`` may also be a stand-in for a place the watchlist does not hold (the demo's pixel-space
    site, :class:`sitewatch.pipeline.SiteLike`): it has a ``name`` and an ``aoi``, and the descriptive
    fields it lacks are reported as unknown.
    """
    zones = getattr(site, "zones", None) or {}
    return SiteInfo(
        name=site.name,
        title=getattr(site, "title", None) or site.name,
        kind=getattr(site, "kind", None),
        country=getattr(site, "country", None),
        aliases=list(getattr(site, "aliases", None) or []),
        notes=getattr(site, "notes", None),
        sources=list(getattr(site, "sources", None) or []),
        aoi_wkt=site.aoi.wkt,
        zones={k: v.wkt for k, v in zones.items()},
    )


def pass_summary(p: Pass, label: str) -> PassSummary:
    return PassSummary(
        id=p.id,
        label=label,
        acquired=p.acquired,
        scene_path=p.scene_path,
        gsd_m=p.gsd_m,
        model=p.model,
        crs=p.crs,
        georeferenced=p.crs is not None and p.transform is not None,
        simulated=p.simulated,
        aoi_coverage=p.seen_coverage if p.aoi_coverage is not None else None,
        platform=p.metadata.get("platform"),
        counts=p.counts(),
        detection_ids=[d.id for d in p.detections if d.id is not None],
    )


def _type_of(d: Detection) -> tuple[str, str, str]:
    """(role, identification, level) of a detection: its label (type → family → role → size class).

    The role column holds the role group only where it alone reaches the label threshold
    ("undetermined" otherwise); the identification is the label's text, never a most-probable
    type below the threshold.
    """
    label = label_detection(d)
    if not label.identified:
        return ("unidentified", "unidentified", "category")
    role = label_detection(d, levels=("role",))
    return (role.key if role.identified else "undetermined", label.text, label.level)


def inventory(passes: Sequence[Pass]) -> list[InventoryRow]:
    """Counts by category / role / identification in each pass, rows sorted by category then role."""
    per_pass = [Counter((d.category, *_type_of(d)) for d in p.detections) for p in passes]
    keys = sorted(set().union(*per_pass)) if per_pass else []
    return [
        InventoryRow(category=c, role=r, type_name=t, level=lv, counts=[pp[(c, r, t, lv)] for pp in per_pass])
        for c, r, t, lv in keys
    ]


# --------------------------------------------------------------------------------------- comparisons


def _object_row(o: ObjectChange) -> ObjectChangeRow:
    return ObjectChangeRow(
        status=o.status,
        category=o.category,
        group=o.group or None,
        zone=o.zone,
        det_a=o.det_a.id if o.det_a is not None else None,
        det_b=o.det_b.id if o.det_b is not None else None,
        displacement_m=o.displacement_m,
    )


def comparison_summary(comp: Comparison, label: str, a: PassSummary, b: PassSummary) -> ComparisonSummary:
    """The report's view of a :class:`sitewatch.compare.Comparison` of passes ``a`` (older) and ``b``."""
    reg = comp.registration.to_dict() if comp.registration is not None else {}
    return ComparisonSummary(
        label=label,
        pass_a=a.id,
        pass_b=b.id,
        date_a=a.date,
        date_b=b.date,
        sentence=comp.sentence,
        counts={cat: {s: int(n) for s, n in v.items()} for cat, v in comp.counts.items()},
        registration={k: v for k, v in reg.items() if isinstance(v, str | int | float | bool | type(None))},
        pixel_change=dict(comp.pixel_change),
        warnings=list(comp.warnings),
        objects=[_object_row(o) for o in comp.objects],
    )


# --------------------------------------------------------------------------------------- assessment


def _indicator_rows(indicators: Sequence[IndicatorResult], book: EvidenceBook) -> list[IndicatorRow]:
    rows = []
    for ind in indicators:
        book.indicators[ind.name] = ind
        rows.append(
            IndicatorRow(
                name=ind.title or ind.name,
                fired=ind.state == "fired",
                state=ind.state,
                description=ind.sentence or ind.reason,
                evidence=book.cite_all(ind.evidence),
            )
        )
    return rows


def _ach(
    ach_matrix: Mapping[str, Any], hyps: list[HypothesisRow], book: EvidenceBook
) -> tuple[list[str], list[AchRow]]:
    """ACH hypotheses and rows of :attr:`sitewatch.assess.Assessment.ach_matrix`
    (``{"hypotheses": [names], "rows": [EvidenceItem dicts]}``), cells aligned with the hypotheses."""
    names = [str(h) for h in ach_matrix["hypotheses"]] or [h.name for h in hyps]
    rows = []
    for r in ach_matrix["rows"]:
        scores = r["scores"]
        rows.append(
            AchRow(
                evidence=str(r["title"] or r["ref"]),
                weight=float(r["weight"]),
                cells=[str(scores.get(h, "N")) for h in names],
                evidence_keys=book.cite_all([r["ref"], *r["refs"]]),
            )
        )
    return names, rows


def assessment_section(assessment: Assessment | None, book: EvidenceBook) -> AssessmentSection:
    """The report's view of a :class:`sitewatch.assess.Assessment`, citations resolved.

    Indicators are registered first so judgements may cite ``indicator:<name>``.
    """
    if assessment is None:
        return AssessmentSection(available=False)
    indicators = _indicator_rows(assessment.indicators, book)
    hyps = [
        HypothesisRow(
            name=h.name, description=h.statement, score=h.score, probability=h.probability, term=h.term
        )
        for h in assessment.hypotheses
    ]
    ach_names, ach_rows = _ach(assessment.ach_matrix, hyps, book)
    judgements = [
        Judgement(text=str(j["text"]), evidence=book.cite_all(j["evidence"]))
        for j in assessment.key_judgements
    ]
    confidence = assessment.confidence
    return AssessmentSection(
        available=True,
        judgements=judgements,
        confidence=confidence["level"],
        confidence_reasons=[str(r) for r in confidence["reasons"]],
        hypotheses=hyps,
        ach_hypotheses=ach_names,
        ach_rows=ach_rows,
        indicators=indicators,
    )


def claim_rows(claims: Sequence[Claim], checks: Sequence[ClaimCheck], book: EvidenceBook) -> list[ClaimRow]:
    """Claims with their verdicts; each row cites its claim entry and the imagery evidence of the verdict.

    Args:
        claims: the claims, registered as citable evidence.
        checks: their verdicts; claims without a verdict are listed as "unchecked".
    """
    by_id: dict[str, Claim] = {}
    for c in claims:
        by_id[c.id] = c
        book.claims[c.id] = c
    verdicts = {chk.claim_id: chk for chk in checks}
    rows = []
    for cid, claim in by_id.items():
        chk = verdicts.get(cid)
        keys = [book.cite_claim(cid)] + (book.cite_all(chk.evidence) if chk is not None else [])
        rows.append(
            ClaimRow(
                id=cid,
                source=claim.source,
                published=claim.published,
                text=claim.text,
                verdict=chk.verdict if chk is not None else "unchecked",
                note=chk.reason if chk is not None else "",
                evidence=list(dict.fromkeys(k for k in keys if k)),
            )
        )
    return rows


# --------------------------------------------------------------------------------------- assembly


METHOD = [
    "Objects (aircraft, helicopters, ships, large and small vehicles) were detected as oriented boxes in "
    "each pass scene by the detector named below, run in overlapping tiles with seam merging.",
    "Where the ground sample distance is known, each detection was measured in metres and matched against a "
    "reference library of equipment dimensions to rank type candidates; tables and judgements name the most "
    "specific of type, family (shared airframe), role and size class whose calibrated probability reaches "
    "{threshold:.2f}, never a most probable type below it.",
    "Consecutive passes were co-registered and objects matched between them to classify each as arrived, "
    "departed, remained or moved; pixel change not explained by objects is reported per zone.",
    "Indicators and competing hypotheses were weighed with an analysis of competing hypotheses (ACH); "
    "open-source claims were checked against the imagery.",
]


def _limitations(
    passes: Sequence[PassSummary], comparisons: Sequence[ComparisonSummary], extra: Iterable[str]
) -> list[str]:
    out: list[str] = []
    sims = [p.label for p in passes if p.simulated]
    if sims:
        out.append(
            f"SIMULATED IMAGERY: passes {', '.join(sims)} are generated scenes, not observations of the "
            "real site."
        )
    if not passes:
        out.append("No passes of this site are stored: nothing was observed.")
    elif len(passes) == 1:
        out.append("Only one pass is stored: changes over time cannot be assessed.")
    for p in passes:
        if not p.georeferenced:
            out.append(
                f"Pass {p.label} is not georeferenced: positions are in image pixels and north is unknown."
            )
        if p.gsd_m is None:
            out.append(
                f"Pass {p.label} has no known ground sample distance: objects were not measured or "
                "identified."
            )
        if p.aoi_coverage is not None and p.aoi_coverage < LOW_COVERAGE:
            out.append(
                f"Pass {p.label} observed {p.aoi_coverage:.0%} of the site AOI with valid pixels: objects "
                "elsewhere are not observed and not counted."
            )
    for c in comparisons:
        out.extend(f"Comparison {c.label}: {w}" for w in c.warnings)
    out.extend(extra)
    return out


def _pair_of(
    comp: Comparison, index_of: Mapping[int, int], n: int, n_passes: int
) -> tuple[int | None, int | None]:
    """Indices into the pass list of the two passes comparison ``n`` compares."""
    a, b = comp.pass_a.get("id"), comp.pass_b.get("id")
    if a is not None and b is not None:
        return index_of.get(a), index_of.get(b)
    return (n, n + 1) if n + 1 < n_passes else (None, None)


def assemble_report_data(
    site: Any,
    passes: Sequence[Pass],
    *,
    comparisons: Sequence[Comparison] = (),
    assessment: Assessment | None = None,
    claims: Sequence[Claim] = (),
    claim_checks: Sequence[ClaimCheck] = (),
    open_scene: SceneOpener | None = None,
    period: str | None = None,
    notes: Iterable[str] = (),
    max_chips: int = MAX_CHIPS,
) -> ReportData:
    """Turn stage outputs into :class:`ReportData`.

    Args:
        site: a :class:`sitewatch.sites.Site` (or a stand-in, see :func:`site_info`).
        passes: the site's passes, oldest first.
        comparisons: comparisons of pairs of ``passes``, found by the pass ids they carry
            (``pass_a``/``pass_b``), else taken to compare ``passes[i]`` with ``passes[i+1]``.
        assessment: the assessment, or None when it could not be made.
        claims: claims about the site.
        claim_checks: the imagery's verdicts on the claims.
        open_scene: re-opens a pass scene from its ``scene_path`` for chips; None skips chips.
        period: the span of passes asked for, e.g. ``"from 2024-12-10"`` (reported only).
        notes: extra limitations to report (e.g. why a stage could not run).
        max_chips: most chip pairs to draw.
    """
    info = site_info(site)
    summaries = [pass_summary(p, f"P{i + 1}") for i, p in enumerate(passes)]
    det_index = {
        d.id: (d, s) for p, s in zip(passes, summaries, strict=True) for d in p.detections if d.id is not None
    }
    book = EvidenceBook(summaries, det_index)
    for s in summaries:
        if s.id is not None:
            book.cite_pass(s.id)
    comp_summaries: list[ComparisonSummary] = []
    comp_pairs: list[tuple[Comparison, ComparisonSummary, int, int]] = []
    index_of = {p.id: i for i, p in enumerate(passes) if p.id is not None}
    for n, comp in enumerate(comparisons):
        i, k = _pair_of(comp, index_of, n, len(passes))
        if i is None or k is None:
            continue
        cs = comparison_summary(comp, f"C{len(comp_summaries) + 1}", summaries[i], summaries[k])
        comp_summaries.append(cs)
        comp_pairs.append((comp, cs, i, k))
        if cs.pass_a is not None and cs.pass_b is not None:
            book.comparisons[(cs.pass_a, cs.pass_b)] = cs
            book.cite_comparison(cs.pass_a, cs.pass_b)
    claim_table = claim_rows(claims, claim_checks, book)
    section = assessment_section(assessment, book)
    if len(summaries) < 2 and assessment is None:
        section.unassessable.append(
            "Change over time cannot be assessed: only one pass of this site is stored; arrivals, departures "
            "and activity trends need at least two."
        )
    if not summaries:
        section.unassessable.append("Nothing can be assessed: no passes of this site are stored.")
    if assessment is None and summaries:
        section.unassessable.append("No assessment was made (see limitations).")
    if assessment is not None:
        section.unassessable += assessment.not_assessable

    scenes = SceneCache(open_scene)
    chip_pairs: list[ChipPair] = []
    try:
        for comp, cs, i, k in reversed(comp_pairs):  # newest changes first
            if len(chip_pairs) >= max_chips:
                break
            chip_pairs += comparison_chips(
                comp, cs, summaries[i], summaries[k], scenes, max_chips - len(chip_pairs)
            )
        if not comp_pairs and passes:
            chip_pairs = single_pass_chips(passes[-1], summaries[-1], scenes, min(max_chips, 4))
        if passes and not any(p.detections for p in passes):
            chip_pairs = overview_chips(passes, summaries, scenes)
    finally:
        scenes.close()

    figures = []
    if summaries:
        figures.append(
            Figure(
                key="timeline",
                title="Detections per category per pass",
                caption="Counts of detected objects in each stored pass (SIM = simulated imagery).",
                png_b64=png_base64(charts.timeline_png(summaries)),
            )
        )
    if info.aoi_wkt and shapely_wkt.loads(info.aoi_wkt).area > 0:
        latest = passes[-1] if passes else None
        figures.append(
            Figure(
                key="site-map",
                title=f"{info.title}: site map"
                + (f" with detections of {summaries[-1].label} {summaries[-1].date}" if latest else ""),
                caption=(
                    "AOI (solid), zones (dotted), scanned area (dashed) and detection footprints by "
                    "category; WGS84."
                ),
                png_b64=png_base64(
                    maps.site_map_png(
                        info,
                        latest.detections if latest else [],
                        scene_footprint_wkt=latest.footprint_wkt if latest else None,
                    )
                ),
            )
        )
    model_text, model_limits = reliability.model_notes(p.model for p in passes)
    extra = list(notes) + scenes.problems
    if book.unresolved:
        missing = sorted(set(book.unresolved))
        extra.append(
            f"{len(missing)} evidence reference(s) from the assessment could not be found in the store "
            f"and are not cited: {', '.join(missing[:5])}"
        )
    return ReportData(
        title=f"{info.title}: imagery assessment",
        generated=datetime.now(UTC),
        sitewatch_version=__version__,
        site=info,
        period=period or None,
        passes=summaries,
        inventory=inventory(passes),
        comparisons=comp_summaries,
        assessment=section,
        claims=claim_table,
        evidence=list(book.entries.values()),
        chips=chip_pairs,
        figures=figures,
        method=[m.format(threshold=IdentifySettings().label_threshold) for m in METHOD],
        models=model_text,
        limitations=_limitations(summaries, comp_summaries, model_limits + extra),
    )


def build_report_data(
    store: Store, site_name: str | Any, span: PassSpan | None = None, *, max_chips: int = MAX_CHIPS
) -> ReportData:
    """Gather everything a report of ``site_name`` shows.

    Consecutive passes are compared (a pair that cannot be compared is reported, not fatal), the
    stored claims about the site are checked and the site assessed; the store is only read.

    Args:
        store: an open :class:`sitewatch.store.Store`.
        site_name: site name or alias (looked up in the watchlist), or a Site object (a site the
            watchlist does not hold, e.g. the demo's).
        span: only the passes of this span (``--from`` / ``--to``; default all).
        max_chips: most before/after chip pairs.

    Raises:
        SiteError: unknown site.
        StoreError: the store cannot be read.
    """
    from sitewatch.assess import Claim, assess_site
    from sitewatch.compare import compare_passes
    from sitewatch.imagery import open_scene

    if isinstance(site_name, str):
        from sitewatch.sites import get_site

        site = get_site(site_name)
    else:
        site = site_name
    passes = list(store.list_passes(site.name))
    if span is not None and not span.is_open:
        passes = span.select(passes, site.name)
    notes: list[str] = []
    comparisons: list[Comparison] = []
    for a, b in zip(passes, passes[1:], strict=False):
        try:
            comparisons.append(compare_passes(a, b, site))
        except SitewatchError as e:
            log.warning("passes %s and %s not compared: %s", a.id, b.id, e)
            notes.append(f"Passes id {a.id} and {b.id} could not be compared: {e}")
    stored_claims = store.list_claims(site.name)
    assessment = None
    try:
        assessment = assess_site(site, passes, comparisons, stored_claims)
    except SitewatchError as e:
        notes.append(f"The assessment could not be made: {e}")
    if assessment is not None and assessment.claims:
        claims = assessment.claims
    else:
        claims = [Claim.from_dict(c) for c in stored_claims]
    return assemble_report_data(
        site,
        passes,
        comparisons=comparisons,
        assessment=assessment,
        claims=claims,
        claim_checks=assessment.checks if assessment is not None else [],
        open_scene=open_scene,
        period=span.describe() if span else None,
        notes=notes,
        max_chips=max_chips,
    )
