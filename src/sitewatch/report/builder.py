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
from sitewatch.errors import SitewatchError
from sitewatch.identify import IdentifySettings, label_detection
from sitewatch.report import charts, maps
from sitewatch.report._access import b64, field
from sitewatch.report._models import model_notes
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
)
from sitewatch.types import Detection, Pass

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan

log = logging.getLogger(__name__)

#: How many before/after chip pairs a report shows at most.
MAX_CHIPS = 6
#: Below this AOI coverage a pass is flagged in the limitations.
LOW_COVERAGE = 0.9


# --------------------------------------------------------------------------------------- site, passes


def site_info(site: Any) -> SiteInfo:
    """The report's view of a :class:`sitewatch.sites.Site` (or anything with the same fields)."""
    aoi = field(site, "aoi")
    zones = field(site, "zones") or {}
    return SiteInfo(
        name=field(site, "name"),
        title=field(site, "title") or field(site, "name"),
        kind=field(site, "kind"),
        country=field(site, "country"),
        aliases=list(field(site, "aliases") or []),
        notes=field(site, "notes"),
        sources=list(field(site, "sources") or []),
        aoi_wkt=aoi.wkt if aoi is not None and hasattr(aoi, "wkt") else aoi,
        zones={k: (v.wkt if hasattr(v, "wkt") else v) for k, v in zones.items()},
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


def _det_id(d: Any) -> int | None:
    return field(d, "id") if d is not None else None


def comparison_summary(comp: Any, label: str, a: PassSummary, b: PassSummary) -> ComparisonSummary:
    """The report's view of a :class:`sitewatch.compare.Comparison` (or its ``to_dict()``)."""
    reg = field(comp, "registration")
    reg_d = (
        reg.to_dict()
        if hasattr(reg, "to_dict")
        else (
            dict(reg)
            if isinstance(reg, Mapping)
            else dict(vars(reg))
            if reg is not None and hasattr(reg, "__dict__")
            else {}
        )
    )
    if reg is not None and not reg_d:
        reg_d = {
            k: field(reg, k)
            for k in ("shift_x_px", "shift_y_px", "rotation_deg", "scale", "quality", "method")
        }
    objects = [
        ObjectChangeRow(
            status=str(field(o, "status")),
            category=str(
                field(o, "category") or field(field(o, "det_b") or field(o, "det_a"), "category") or ""
            ),
            group=field(o, "group") or field(o, "role") or field(o, "type_group"),
            zone=field(o, "zone"),
            det_a=_det_id(field(o, "det_a")),
            det_b=_det_id(field(o, "det_b")),
            displacement_m=field(o, "displacement_m"),
        )
        for o in field(comp, "objects") or []
    ]
    counts = field(comp, "counts") or {}
    pix = field(comp, "pixel_change") or {}
    return ComparisonSummary(
        label=label,
        pass_a=a.id,
        pass_b=b.id,
        date_a=a.date,
        date_b=b.date,
        sentence=str(field(comp, "sentence") or ""),
        counts={str(k): {str(s): int(n) for s, n in dict(v).items()} for k, v in dict(counts).items()},
        registration={k: v for k, v in reg_d.items() if isinstance(v, str | int | float | bool | type(None))},
        pixel_change={str(k): (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in dict(pix).items()},
        warnings=[str(w) for w in field(comp, "warnings") or []],
        objects=objects,
    )


# --------------------------------------------------------------------------------------- assessment


def _indicator_rows(indicators: Sequence[Any], book: EvidenceBook) -> list[IndicatorRow]:
    rows = []
    for ind in indicators:
        name = str(field(ind, "name") or field(ind, "id") or "")
        book.indicators[name] = ind
        state = field(ind, "state")
        rows.append(
            IndicatorRow(
                name=str(field(ind, "title") or name),
                fired=state == "fired" if state is not None else bool(field(ind, "fired", True)),
                state=str(state or ("fired" if field(ind, "fired", True) else "not-fired")),
                description=str(
                    field(ind, "sentence") or field(ind, "reason") or field(ind, "description") or ""
                ),
                evidence=book.cite_all(field(ind, "evidence") or []),
            )
        )
    return rows


def _ach(assessment: Any, hyps: list[HypothesisRow], book: EvidenceBook) -> tuple[list[str], list[AchRow]]:
    """ACH hypotheses and rows, from ``{"hypotheses": [...], "rows": [...]}`` or a list of evidence items."""
    ach = field(assessment, "ach_matrix")
    items = ach if isinstance(ach, list | tuple) else field(ach, "rows") or field(ach, "evidence") or []
    names = [
        str(field(h, "name", h))
        for h in (field(ach, "hypotheses") if not isinstance(ach, list | tuple) else None) or []
    ]
    names = names or [h.name for h in hyps]
    rows = []
    for r in items:
        cells = field(r, "scores") or field(r, "cells") or field(r, "ratings") or []
        if isinstance(cells, Mapping):
            cells = [cells.get(h, "N") for h in names]
        own = field(r, "ref")
        rows.append(
            AchRow(
                evidence=str(field(r, "title") or field(r, "evidence") or field(r, "name") or own or ""),
                weight=float(field(r, "weight", 1.0) if field(r, "weight") is not None else 1.0),
                cells=[str(c) for c in cells],
                evidence_keys=book.cite_all(([own] if own else []) + list(field(r, "refs") or [])),
            )
        )
    return names, rows


def assessment_section(assessment: Any, book: EvidenceBook) -> AssessmentSection:
    """The report's view of a :class:`sitewatch.assess.Assessment` (or its ``to_dict()``), citations resolved.

    Indicators are registered first so judgements may cite ``indicator:<name>``.
    """
    if assessment is None:
        return AssessmentSection(available=False)
    indicators = _indicator_rows(field(assessment, "indicators") or [], book)
    hyps = [
        HypothesisRow(
            name=str(field(h, "name")),
            description=str(field(h, "statement") or field(h, "description") or ""),
            score=field(h, "score"),
            probability=field(h, "probability"),
            term=str(field(h, "term") or field(h, "estimative_term") or ""),
        )
        for h in field(assessment, "hypotheses") or []
    ]
    ach_names, ach_rows = _ach(assessment, hyps, book)
    judgements = []
    for j in field(assessment, "key_judgements") or []:
        text = j if isinstance(j, str) else str(field(j, "text", ""))
        judgements.append(
            Judgement(
                text=text, evidence=book.cite_all([] if isinstance(j, str) else field(j, "evidence") or [])
            )
        )
    conf = field(assessment, "confidence")
    level = conf if isinstance(conf, str) else field(conf, "level")
    reasons = [] if isinstance(conf, str) else [str(r) for r in field(conf, "reasons") or []]
    return AssessmentSection(
        available=True,
        judgements=judgements,
        confidence=level,
        confidence_reasons=reasons,
        hypotheses=hyps,
        ach_hypotheses=ach_names,
        ach_rows=ach_rows,
        indicators=indicators,
    )


def claim_rows(claims: Sequence[Any], checks: Sequence[Any], book: EvidenceBook) -> list[ClaimRow]:
    """Claims with their verdicts; each row cites its claim entry and the imagery evidence of the verdict.

    Args:
        claims: the claims (``Claim`` objects or their dicts), registered as citable evidence.
        checks: verdicts (``ClaimCheck``: ``claim_id``, ``verdict``, ``reason``, ``evidence``);
            claims without a verdict are listed as "unchecked".
    """
    by_id: dict[str, Any] = {}
    for c in claims:
        cid = str(field(c, "id"))
        by_id[cid] = c
        book.claims[cid] = {k: field(c, k) for k in ("source", "published", "text")}
    verdicts = {str(field(chk, "claim_id")): chk for chk in checks}
    rows = []
    for cid, claim in by_id.items():
        chk = verdicts.get(cid)
        keys = [book.cite_claim(cid)] + book.cite_all(field(chk, "evidence") or [])
        published = field(claim, "published")
        rows.append(
            ClaimRow(
                id=cid,
                source=str(field(claim, "source") or ""),
                published=datetime.fromisoformat(published) if isinstance(published, str) else published,
                text=str(field(claim, "text") or ""),
                verdict=str(field(chk, "verdict") or "unchecked"),
                note=str(field(chk, "reason") or field(chk, "note") or ""),
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


def _pair_of(comp: Any, index_of: Mapping[int, int], n: int, n_passes: int) -> tuple[int | None, int | None]:
    """Indices into the pass list of the two passes comparison ``n`` compares."""
    ids = []
    for name in ("pass_a", "pass_b"):
        p = field(comp, name)
        ids.append(p if isinstance(p, int) else field(p, "id"))
    if ids[0] is not None and ids[1] is not None:
        return index_of.get(ids[0]), index_of.get(ids[1])
    return (n, n + 1) if n + 1 < n_passes else (None, None)


def assemble_report_data(
    site: Any,
    passes: Sequence[Pass],
    *,
    comparisons: Sequence[Any] = (),
    assessment: Any = None,
    claims: Sequence[Any] = (),
    claim_checks: Sequence[Any] = (),
    open_scene: SceneOpener | None = None,
    period: str | None = None,
    notes: Iterable[str] = (),
    max_chips: int = MAX_CHIPS,
) -> ReportData:
    """Turn stage outputs into :class:`ReportData`.

    Args:
        site: a :class:`sitewatch.sites.Site` (or same-shaped object/mapping).
        passes: the site's passes, oldest first.
        comparisons: comparisons of pairs of ``passes``, found by the pass ids they carry
            (``pass_a``/``pass_b``), else taken to compare ``passes[i]`` with ``passes[i+1]``.
        assessment: the assessment, or None when it could not be made.
        claims: claims about the site (``Claim`` objects or their dicts, with ``id``).
        claim_checks: claim verdicts (``claim_id``, ``verdict``, ``reason``, ``evidence``).
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
    comp_pairs: list[tuple[Any, ComparisonSummary, int, int]] = []
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
    section.unassessable += [str(x) for x in field(assessment, "not_assessable") or []]

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
                png_b64=b64(charts.timeline_png(summaries)),
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
                png_b64=b64(
                    maps.site_map_png(
                        info,
                        latest.detections if latest else [],
                        scene_footprint_wkt=latest.footprint_wkt if latest else None,
                    )
                ),
            )
        )
    model_text, model_limits = model_notes(p.model for p in passes)
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
    store: Any, site_name: str | Any, span: PassSpan | None = None, *, max_chips: int = MAX_CHIPS
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
    from sitewatch.assess import assess_site
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
    comparisons: list[Any] = []
    for a, b in zip(passes, passes[1:], strict=False):
        try:
            comparisons.append(compare_passes(a, b, site))
        except SitewatchError as e:
            log.warning("passes %s and %s not compared: %s", a.id, b.id, e)
            notes.append(f"Passes id {a.id} and {b.id} could not be compared: {e}")
    claims = list(store.list_claims(site.name))
    assessment = None
    try:
        assessment = assess_site(site, passes, comparisons, claims)
    except SitewatchError as e:
        notes.append(f"The assessment could not be made: {e}")
    return assemble_report_data(
        site,
        passes,
        comparisons=comparisons,
        assessment=assessment,
        claims=field(assessment, "claims") or claims,
        claim_checks=field(assessment, "checks") or [],
        open_scene=open_scene,
        period=span.describe() if span else None,
        notes=notes,
        max_chips=max_chips,
    )
