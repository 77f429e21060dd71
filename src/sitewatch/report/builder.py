"""Build the :class:`~sitewatch.report.model.ReportData` of a site from the store and the later stages.

:func:`build_report_data` reads the passes (and claims) from the store, compares consecutive
passes, checks the claims, runs the assessment, and hands everything to
:func:`assemble_report_data`, which turns stage outputs into the report model: evidence entries
with resolved citations, the inventory, chips re-read from the pass scenes, the timeline and the
site map. The report reads the store; it never writes to it.
"""

from __future__ import annotations

import base64
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sitewatch import __version__
from sitewatch.errors import SitewatchError
from sitewatch.imagery.base import Scene
from sitewatch.report import charts, chips, maps
from sitewatch.report.model import (
    AchRow,
    AssessmentSection,
    ChipImage,
    ChipPair,
    ClaimRow,
    ComparisonSummary,
    EvidenceEntry,
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

log = logging.getLogger(__name__)

#: How many before/after chip pairs a report shows at most.
MAX_CHIPS = 6
#: Below this AOI coverage a pass is flagged in the limitations.
LOW_COVERAGE = 0.9

SceneOpener = Callable[[str], Scene]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute or mapping key ``name`` of a stage output (objects and their ``to_dict`` both work)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------- site, passes


def site_info(site: Any) -> SiteInfo:
    """The report's view of a :class:`sitewatch.sites.Site` (or anything with the same fields)."""
    aoi = _get(site, "aoi")
    zones = _get(site, "zones") or {}
    return SiteInfo(
        name=_get(site, "name"),
        title=_get(site, "title") or _get(site, "name"),
        kind=_get(site, "kind"),
        country=_get(site, "country"),
        aliases=list(_get(site, "aliases") or []),
        notes=_get(site, "notes"),
        sources=list(_get(site, "sources") or []),
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
        aoi_coverage=p.aoi_coverage,
        platform=p.metadata.get("platform"),
        counts=p.counts(),
        detection_ids=[d.id for d in p.detections if d.id is not None],
    )


def _type_of(d: Detection) -> tuple[str, str]:
    """(role, type name) of a detection's best candidate, or unidentified."""
    best = d.best_type
    if best is None or best.type_id == "unknown":
        return ("unidentified", "unidentified")
    return (best.role or "unidentified", best.name)


def inventory(passes: Sequence[Pass]) -> list[InventoryRow]:
    """Counts by category / role / best type in each pass, rows sorted by category then role."""
    per_pass = [Counter((d.category, *_type_of(d)) for d in p.detections) for p in passes]
    keys = sorted(set().union(*per_pass)) if per_pass else []
    return [InventoryRow(category=c, role=r, type_name=t, counts=[pp[(c, r, t)] for pp in per_pass]) for c, r, t in keys]


# --------------------------------------------------------------------------------------- evidence


class EvidenceBook:
    """Evidence entries created on first citation, keyed by what they cite.

    Keys: ``pass-<id>``, ``det-<id>``, ``cmp-<pass a>-<pass b>``, ``claim-<id>``, ``ind-<slug>``.
    """

    def __init__(self, passes: Sequence[PassSummary], detections: Mapping[int, tuple[Detection, PassSummary]]) -> None:
        self.passes = {p.id: p for p in passes if p.id is not None}
        self.detections = detections
        self.comparisons: dict[tuple[int, int], ComparisonSummary] = {}
        self.claims: dict[int, dict[str, Any]] = {}
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
        best = d.best_type
        ident = f", {best.name} {best.probability:.0%}" if best and best.type_id != "unknown" else ""
        size = f", {d.measurement.length_m:.1f} x {d.measurement.width_m:.1f} m" if d.measurement else ""
        text = f"Detection {det_id}: {d.category}{ident}{size}, score {d.score:.2f}, in pass {p.label} (id {p.id}, {p.date})"
        return self._add(EvidenceEntry(key=f"det-{det_id}", kind="detection", text=text, pass_ids=[p.id], detection_ids=[det_id]))

    def cite_comparison(self, a: int, b: int) -> str | None:
        c = self.comparisons.get((a, b))
        if c is None:
            return None
        text = f"Comparison {c.label}: pass id {a} ({c.date_a}) → pass id {b} ({c.date_b}). {c.sentence}".strip()
        return self._add(EvidenceEntry(key=f"cmp-{a}-{b}", kind="comparison", text=text, pass_ids=[a, b], comparison=c.label))

    def cite_claim(self, claim_id: int) -> str | None:
        c = self.claims.get(claim_id)
        if c is None:
            return None
        source = str(_get(c, "source") or "unknown source")
        published = _get(c, "published")
        when = f", published {str(published)[:10]}" if published else ""
        text = f"Claim {claim_id} ({source}{when}): \u201c{_get(c, 'text', '')}\u201d"
        return self._add(EvidenceEntry(key=f"claim-{claim_id}", kind="claim", text=text, claim_id=claim_id, source=source))

    def cite_note(self, slug: str, text: str) -> str:
        return self._add(EvidenceEntry(key=f"ind-{slug}", kind="indicator", text=text))

    _REF = re.compile(r"^\s*(pass|p|detection|det|d|comparison|cmp|c|claim|cl)[\s:#_-]*(\d+)(?:\s*(?:-|->|→|_|,)\s*(\d+))?\s*$", re.I)

    def cite(self, ref: Any) -> list[str]:
        """Resolve one evidence reference from a later stage into evidence keys.

        Accepts strings (``"pass:3"``, ``"det:12"``, ``"detection 12"``, ``"comparison:3-5"``,
        ``"claim:4"``) and mappings (``{"kind": "pass", "id": 3}``, ``{"pass_id": 3,
        "detection_ids": [...]}``, ``{"claim_id": 4}``, ``{"pass_a": 3, "pass_b": 5}``).
        Unresolvable references are recorded in :attr:`unresolved` and produce no key.
        """
        keys: list[str | None] = []
        if isinstance(ref, str):
            m = self._REF.match(ref)
            if m:
                kind, n, n2 = m.group(1).lower(), int(m.group(2)), m.group(3)
                if kind in ("comparison", "cmp", "c") and n2 is not None:
                    keys.append(self.cite_comparison(n, int(n2)))
                elif kind in ("pass", "p"):
                    keys.append(self.cite_pass(n))
                elif kind in ("detection", "det", "d"):
                    keys.append(self.cite_detection(n))
                elif kind in ("claim", "cl"):
                    keys.append(self.cite_claim(n))
                else:
                    keys.append(None)
            else:
                keys.append(None)
        elif isinstance(ref, Mapping) or hasattr(ref, "__dict__") or hasattr(ref, "__slots__"):
            keys.extend(self._cite_structured(ref))
        else:
            keys.append(None)
        if not keys or any(k is None for k in keys):
            self.unresolved.append(str(ref))
        return [k for k in keys if k is not None]

    def _cite_structured(self, ref: Any) -> list[str | None]:
        kind = str(_get(ref, "kind") or _get(ref, "type") or "").lower()
        rid = _get(ref, "id")
        out: list[str | None] = []
        if kind in ("pass", "detection", "claim") and rid is not None:
            return [{"pass": self.cite_pass, "detection": self.cite_detection, "claim": self.cite_claim}[kind](int(rid))]
        if _get(ref, "pass_a") is not None and _get(ref, "pass_b") is not None:
            out.append(self.cite_comparison(int(_get(ref, "pass_a")), int(_get(ref, "pass_b"))))
        for d in _get(ref, "detection_ids") or ([_get(ref, "detection_id")] if _get(ref, "detection_id") is not None else []):
            out.append(self.cite_detection(int(d)))
        pid = _get(ref, "pass_id")
        if pid is not None and not out:
            out.append(self.cite_pass(int(pid)))
        if _get(ref, "claim_id") is not None:
            out.append(self.cite_claim(int(_get(ref, "claim_id"))))
        return out

    def cite_all(self, refs: Iterable[Any]) -> list[str]:
        keys: list[str] = []
        for r in refs or ():
            keys.extend(k for k in self.cite(r) if k not in keys)
        return keys


# --------------------------------------------------------------------------------------- comparisons


def _det_id(d: Any) -> int | None:
    return _get(d, "id") if d is not None else None


def comparison_summary(comp: Any, label: str, a: PassSummary, b: PassSummary) -> ComparisonSummary:
    """The report's view of a :class:`sitewatch.compare.Comparison` (or its ``to_dict()``)."""
    reg = _get(comp, "registration")
    reg_d = reg.to_dict() if hasattr(reg, "to_dict") else (dict(reg) if isinstance(reg, Mapping) else dict(vars(reg)) if reg is not None and hasattr(reg, "__dict__") else {})
    if reg is not None and not reg_d:
        reg_d = {k: _get(reg, k) for k in ("shift_x_px", "shift_y_px", "rotation_deg", "scale", "quality", "method")}
    objects = [
        ObjectChangeRow(
            status=str(_get(o, "status")),
            category=str(_get(o, "category") or _get(_get(o, "det_b") or _get(o, "det_a"), "category") or ""),
            group=_get(o, "group") or _get(o, "role") or _get(o, "type_group"),
            zone=_get(o, "zone"),
            det_a=_det_id(_get(o, "det_a")),
            det_b=_det_id(_get(o, "det_b")),
            displacement_m=_get(o, "displacement_m"),
        )
        for o in _get(comp, "objects") or []
    ]
    counts = _get(comp, "counts") or {}
    pix = _get(comp, "pixel_change") or {}
    return ComparisonSummary(
        label=label,
        pass_a=a.id,
        pass_b=b.id,
        date_a=a.date,
        date_b=b.date,
        sentence=str(_get(comp, "sentence") or ""),
        counts={str(k): {str(s): int(n) for s, n in dict(v).items()} for k, v in dict(counts).items()},
        registration={k: v for k, v in reg_d.items() if isinstance(v, str | int | float | bool | type(None))},
        pixel_change={str(k): (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in dict(pix).items()},
        warnings=[str(w) for w in _get(comp, "warnings") or []],
        objects=objects,
    )


# --------------------------------------------------------------------------------------- chips


def _shift_ab(comp_summary: ComparisonSummary, objects: Sequence[Any]) -> tuple[float, float]:
    """Pixel offset (dx, dy) that takes a point in scene A to the same ground in scene B.

    Taken from the matched objects (median of their centre offsets) when there are any, so it does
    not depend on the sign convention of the registration; otherwise from the registration.
    """
    import numpy as np

    pairs = [(_get(o, "det_a"), _get(o, "det_b")) for o in objects]
    offs = [(b.box.cx - a.box.cx, b.box.cy - a.box.cy) for a, b in pairs if isinstance(a, Detection) and isinstance(b, Detection)]
    if offs:
        arr = np.array(offs)
        return float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))
    reg = comp_summary.registration
    return float(reg.get("shift_x_px") or 0.0), float(reg.get("shift_y_px") or 0.0)


def _label(d: Detection) -> str:
    best = d.best_type
    return best.name if best and best.type_id != "unknown" and best.probability >= 0.5 else d.category


def _clusters(items: Sequence[tuple[Detection, Any]], radius_px: float) -> list[list[tuple[Detection, Any]]]:
    """Greedy grouping of (focus detection, payload) whose centres lie within ``radius_px`` of a group seed."""
    groups: list[list[tuple[Detection, Any]]] = []
    for it in items:
        d = it[0]
        for g in groups:
            s = g[0][0]
            if abs(s.box.cx - d.box.cx) <= radius_px and abs(s.box.cy - d.box.cy) <= radius_px:
                g.append(it)
                break
        else:
            groups.append([it])
    return groups


class _Scenes:
    """Opens pass scenes once each; a scene that cannot be opened is noted, not fatal."""

    def __init__(self, opener: SceneOpener | None) -> None:
        self.opener = opener
        self.cache: dict[str, Scene | None] = {}
        self.problems: list[str] = []

    def get(self, path: str) -> Scene | None:
        if self.opener is None:
            return None
        if path not in self.cache:
            try:
                self.cache[path] = self.opener(path)
            except (SitewatchError, OSError) as e:
                self.problems.append(f"{path}: scene could not be re-read for chips ({e})")
                self.cache[path] = None
        return self.cache[path]

    def close(self) -> None:
        for s in self.cache.values():
            if s is not None:
                s.close()


def _chip_image(scene: Scene, window, boxes: list[chips.ChipBox], p: PassSummary, ids: list[int]) -> ChipImage:  # noqa: ANN001
    png = chips.render_chip(scene, window, boxes)
    return ChipImage(
        pass_id=p.id, pass_label=p.label, date=p.date, png_b64=_b64(png), detection_ids=ids,
        colours={s: chips.hex_colour(s) for s in sorted({b.status for b in boxes})},
    )


def _in_window(box, window) -> bool:  # noqa: ANN001
    return window.col_off <= box.cx <= window.col_off + window.width and window.row_off <= box.cy <= window.row_off + window.height


def comparison_chips(
    comp: Any, summary: ComparisonSummary, pa: PassSummary, pb: PassSummary, scenes: _Scenes, limit: int
) -> list[ChipPair]:
    """Before/after chips around the changed objects of one comparison (changes first, then remained)."""
    from rasterio.windows import Window

    objects = list(_get(comp, "objects") or [])
    sa, sb = scenes.get(pa.scene_path), scenes.get(pb.scene_path)
    if sa is None or sb is None or not objects:
        return []
    dx, dy = _shift_ab(summary, objects)
    scale = (pa.gsd_m / pb.gsd_m) if pa.gsd_m and pb.gsd_m else 1.0
    # Every object placed in A's pixel frame (arrivals mapped back from B).
    placed: list[tuple[Detection, Any]] = []
    for o in objects:
        da, db = _get(o, "det_a"), _get(o, "det_b")
        if isinstance(da, Detection):
            placed.append((da, o))
        elif isinstance(db, Detection):
            placed.append((Detection(db.box.translated(-dx, -dy), db.category, db.score), o))
    order = {"arrived": 0, "departed": 0, "moved": 1, "remained": 2}
    placed.sort(key=lambda it: order.get(str(_get(it[1], "status")), 3))
    out: list[ChipPair] = []
    for group in _clusters(placed, radius_px=150.0)[:limit]:
        win_a = chips.chip_window([d.box for d, _ in group])
        win_b = Window(
            int(win_a.col_off + dx), int(win_a.row_off + dy), max(1, int(win_a.width * scale)), max(1, int(win_a.height * scale))
        )
        boxes_a, boxes_b, ids_a, ids_b = [], [], [], []
        statuses: Counter[str] = Counter()
        for o in objects:
            status = str(_get(o, "status"))
            da, db = _get(o, "det_a"), _get(o, "det_b")
            if isinstance(da, Detection) and _in_window(da.box, win_a) and status != "arrived":
                boxes_a.append(chips.ChipBox(da.box, status, _label(da)))
                ids_a += [da.id] if da.id is not None else []
                statuses[status] += 1
            if isinstance(db, Detection) and _in_window(db.box, win_b) and status != "departed":
                boxes_b.append(chips.ChipBox(db.box, status, _label(db)))
                ids_b += [db.id] if db.id is not None else []
                statuses[status] += 0 if isinstance(da, Detection) and _in_window(da.box, win_a) else 1
        desc = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        out.append(
            ChipPair(
                title=f"{summary.label}: {pa.label} {pa.date} → {pb.label} {pb.date}",
                caption=desc,
                statuses=dict(statuses),
                before=_chip_image(sa, win_a, boxes_a, pa, ids_a),
                after=_chip_image(sb, win_b, boxes_b, pb, ids_b),
            )
        )
    return out


def single_pass_chips(p: Pass, summary: PassSummary, scenes: _Scenes, limit: int) -> list[ChipPair]:
    """Chips around the detections of one pass (status ``observed``), largest groups first."""
    scene = scenes.get(p.scene_path)
    if scene is None or not p.detections:
        return []
    groups = sorted(_clusters([(d, None) for d in p.detections], radius_px=150.0), key=len, reverse=True)[:limit]
    out = []
    for g in groups:
        win = chips.chip_window([d.box for d, _ in g])
        inside = [d for d in p.detections if _in_window(d.box, win)]
        boxes = [chips.ChipBox(d.box, "observed", _label(d)) for d in inside]
        ids = [d.id for d in inside if d.id is not None]
        cats = Counter(d.category for d in inside)
        out.append(
            ChipPair(
                title=f"{summary.label} {summary.date}",
                caption=", ".join(f"{n} {c}" for c, n in sorted(cats.items())),
                statuses={"observed": len(inside)},
                after=_chip_image(scene, win, boxes, summary, ids),
            )
        )
    return out


# --------------------------------------------------------------------------------------- assessment


def assessment_section(assessment: Any, book: EvidenceBook) -> AssessmentSection:
    """The report's view of a :class:`sitewatch.assess.Assessment` (or its ``to_dict()``), citations resolved."""
    if assessment is None:
        return AssessmentSection(available=False)
    judgements = []
    for j in _get(assessment, "key_judgements") or []:
        text = j if isinstance(j, str) else str(_get(j, "text", ""))
        judgements.append(Judgement(text=text, evidence=book.cite_all([] if isinstance(j, str) else _get(j, "evidence") or [])))
    conf = _get(assessment, "confidence")
    level = conf if isinstance(conf, str) else _get(conf, "level")
    reasons = [] if isinstance(conf, str) else [str(r) for r in _get(conf, "reasons") or []]
    hyps = [
        HypothesisRow(
            name=str(_get(h, "name")),
            description=str(_get(h, "description") or ""),
            score=_get(h, "score"),
            probability=_get(h, "probability"),
            term=str(_get(h, "term") or _get(h, "estimative_term") or ""),
        )
        for h in _get(assessment, "hypotheses") or []
    ]
    indicators = []
    for i in _get(assessment, "indicators") or []:
        name = str(_get(i, "name") or _get(i, "id") or "")
        refs = _get(i, "evidence") or []
        indicators.append(
            IndicatorRow(
                name=name,
                fired=bool(_get(i, "fired", True)),
                description=str(_get(i, "description") or _get(i, "text") or ""),
                evidence=book.cite_all(refs),
            )
        )
    ach = _get(assessment, "ach_matrix")
    ach_h = [str(h) for h in (_get(ach, "hypotheses") or [h.name for h in hyps])]
    ach_rows = []
    for r in _get(ach, "rows") or []:
        cells = _get(r, "cells") or _get(r, "ratings") or []
        if isinstance(cells, Mapping):
            cells = [cells.get(h, "N") for h in ach_h]
        ach_rows.append(
            AchRow(
                evidence=str(_get(r, "evidence") or _get(r, "name") or _get(r, "indicator") or ""),
                weight=float(_get(r, "weight", 1.0) or 1.0),
                cells=[str(c) for c in cells],
                evidence_keys=book.cite_all(_get(r, "refs") or _get(r, "evidence_refs") or []),
            )
        )
    return AssessmentSection(
        available=True,
        judgements=judgements,
        confidence=level,
        confidence_reasons=reasons,
        hypotheses=hyps,
        ach_hypotheses=ach_h,
        ach_rows=ach_rows,
        indicators=indicators,
    )


def claim_rows(checks: Sequence[Any], book: EvidenceBook) -> list[ClaimRow]:
    """Claims with their verdicts; each row cites its claim entry and the imagery evidence of the verdict."""
    rows = []
    for chk in checks:
        claim = _get(chk, "claim") or chk
        cid = _get(claim, "id")
        if cid is None:
            cid = _get(chk, "claim_id")
        if cid is not None:
            book.claims[int(cid)] = {k: _get(claim, k) for k in ("source", "published", "text")}
        keys = ([book.cite_claim(int(cid))] if cid is not None else []) + book.cite_all(_get(chk, "evidence") or [])
        rows.append(
            ClaimRow(
                id=cid,
                source=str(_get(claim, "source") or ""),
                published=_get(claim, "published"),
                text=str(_get(claim, "text") or ""),
                verdict=str(_get(chk, "verdict") or "unchecked"),
                note=str(_get(chk, "note") or _get(chk, "reason") or _get(chk, "explanation") or ""),
                evidence=[k for k in keys if k],
            )
        )
    return rows


# --------------------------------------------------------------------------------------- assembly


METHOD = [
    "Objects (aircraft, helicopters, ships, large and small vehicles) were detected as oriented boxes in each "
    "pass scene by the detector named below, run in overlapping tiles with seam merging.",
    "Where the ground sample distance is known, each detection was measured in metres and matched against a "
    "reference library of equipment dimensions to rank type candidates.",
    "Consecutive passes were co-registered and objects matched between them to classify each as arrived, "
    "departed, remained or moved; pixel change not explained by objects is reported per zone.",
    "Indicators and competing hypotheses were weighed with an analysis of competing hypotheses (ACH); "
    "open-source claims were checked against the imagery.",
]


def _limitations(passes: Sequence[PassSummary], comparisons: Sequence[ComparisonSummary], extra: Iterable[str]) -> list[str]:
    out: list[str] = []
    sims = [p.label for p in passes if p.simulated]
    if sims:
        out.append(f"SIMULATED IMAGERY: passes {', '.join(sims)} are generated scenes, not observations of the real site.")
    if len(passes) < 2:
        out.append("Only one pass is stored: changes over time cannot be assessed.")
    for p in passes:
        if not p.georeferenced:
            out.append(f"Pass {p.label} is not georeferenced: positions are in image pixels and north is unknown.")
        if p.gsd_m is None:
            out.append(f"Pass {p.label} has no known ground sample distance: objects were not measured or identified.")
        if p.aoi_coverage < LOW_COVERAGE:
            out.append(f"Pass {p.label} covers {p.aoi_coverage:.0%} of the site AOI: objects outside it are not counted.")
    for c in comparisons:
        out.extend(f"Comparison {c.label}: {w}" for w in c.warnings)
    out.extend(extra)
    return out


def assemble_report_data(
    site: Any,
    passes: Sequence[Pass],
    *,
    comparisons: Sequence[Any] = (),
    assessment: Any = None,
    claim_checks: Sequence[Any] = (),
    open_scene: SceneOpener | None = None,
    since: datetime | None = None,
    notes: Iterable[str] = (),
    max_chips: int = MAX_CHIPS,
) -> ReportData:
    """Turn stage outputs into :class:`ReportData`.

    Args:
        site: a :class:`sitewatch.sites.Site` (or same-shaped object/mapping).
        passes: the site's passes, oldest first.
        comparisons: one comparison per consecutive pair of ``passes`` (``comparisons[i]`` compares
            ``passes[i]`` with ``passes[i+1]``); None entries mark pairs that could not be compared.
        assessment: the assessment, or None when it could not be made.
        claim_checks: claim verdicts (each with ``claim``/``claim_id``, ``verdict``, ``evidence``).
        open_scene: re-opens a pass scene from its ``scene_path`` for chips; None skips chips.
        since: the earliest date asked for (reported only).
        notes: extra limitations to report (e.g. why a stage could not run).
        max_chips: most chip pairs to draw.
    """
    info = site_info(site)
    summaries = [pass_summary(p, f"P{i + 1}") for i, p in enumerate(passes)]
    det_index = {d.id: (d, s) for p, s in zip(passes, summaries, strict=True) for d in p.detections if d.id is not None}
    book = EvidenceBook(summaries, det_index)
    for s in summaries:
        if s.id is not None:
            book.cite_pass(s.id)
    comp_summaries: list[ComparisonSummary] = []
    comp_pairs: list[tuple[Any, ComparisonSummary, int]] = []
    for i, comp in enumerate(comparisons):
        if comp is None or i + 1 >= len(summaries):
            continue
        cs = comparison_summary(comp, f"C{len(comp_summaries) + 1}", summaries[i], summaries[i + 1])
        comp_summaries.append(cs)
        comp_pairs.append((comp, cs, i))
        if cs.pass_a is not None and cs.pass_b is not None:
            book.comparisons[(cs.pass_a, cs.pass_b)] = cs
            book.cite_comparison(cs.pass_a, cs.pass_b)
    claims = claim_rows(claim_checks, book)
    section = assessment_section(assessment, book)
    if len(summaries) < 2:
        section.unassessable.append(
            "Change over time cannot be assessed: only one pass of this site is stored; arrivals, departures "
            "and activity trends need at least two."
        )
    if not summaries:
        section.unassessable.append("Nothing can be assessed: no passes of this site are stored.")
    if assessment is None and summaries:
        section.unassessable.append("No assessment was made (see limitations).")

    scenes = _Scenes(open_scene)
    chip_pairs: list[ChipPair] = []
    try:
        for comp, cs, i in reversed(comp_pairs):  # newest changes first
            if len(chip_pairs) >= max_chips:
                break
            chip_pairs += comparison_chips(comp, cs, summaries[i], summaries[i + 1], scenes, max_chips - len(chip_pairs))
        if not comp_pairs and passes:
            chip_pairs = single_pass_chips(passes[-1], summaries[-1], scenes, min(max_chips, 4))
    finally:
        scenes.close()

    figures = []
    if summaries:
        figures.append(Figure(key="timeline", title="Detections per category per pass",
                              caption="Counts of detected objects in each stored pass (SIM = simulated imagery).",
                              png_b64=_b64(charts.timeline_png(summaries))))
    if info.aoi_wkt:
        latest = passes[-1] if passes else None
        figures.append(Figure(
            key="site-map",
            title=f"{info.title}: site map" + (f" with detections of {summaries[-1].label} {summaries[-1].date}" if latest else ""),
            caption="AOI (solid), zones (dotted), scanned area (dashed) and detection footprints by category; WGS84.",
            png_b64=_b64(maps.site_map_png(info, latest.detections if latest else [],
                                           scene_footprint_wkt=latest.footprint_wkt if latest else None)),
        ))
    extra = list(notes) + scenes.problems
    if book.unresolved:
        extra.append(f"{len(book.unresolved)} evidence reference(s) from the assessment could not be found in the store "
                     f"and are not cited: {', '.join(sorted(set(book.unresolved))[:5])}")
    return ReportData(
        title=f"{info.title}: imagery assessment",
        generated=datetime.now(UTC),
        sitewatch_version=__version__,
        site=info,
        since=since,
        passes=summaries,
        inventory=inventory(passes),
        comparisons=comp_summaries,
        assessment=section,
        claims=claims,
        evidence=list(book.entries.values()),
        chips=chip_pairs,
        figures=figures,
        method=METHOD,
        models=sorted({p.model for p in passes}),
        limitations=_limitations(summaries, comp_summaries, extra),
    )


def build_report_data(store: Any, site_name: str, since: datetime | None = None, *, max_chips: int = MAX_CHIPS) -> ReportData:
    """Gather everything a report of ``site_name`` shows.

    Args:
        store: an open :class:`sitewatch.store.Store`.
        site_name: site name or alias.
        since: only passes acquired at or after this time (UTC; naive is taken as UTC).

    Raises:
        SiteError: unknown site.
        StoreError: the store cannot be read.
    """
    from sitewatch.sites import get_site

    site = get_site(site_name)
    passes = list(store.list_passes(site.name))
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        passes = [p for p in passes if p.acquired is None or p.acquired >= since]
    notes: list[str] = []
    comparisons: list[Any] = []
    try:
        from sitewatch.compare import compare_passes
    except ImportError:
        compare_passes = None
        if len(passes) > 1:
            notes.append("The compare stage is not installed: passes were not compared.")
    if compare_passes is not None:
        for a, b in zip(passes, passes[1:], strict=False):
            try:
                comparisons.append(compare_passes(a, b, site))
            except SitewatchError as e:
                log.warning("passes %s and %s not compared: %s", a.id, b.id, e)
                notes.append(f"Passes id {a.id} and {b.id} could not be compared: {e}")
                comparisons.append(None)
    checks: list[Any] = []
    assessment = None
    try:
        from sitewatch.assess import assess_site
        from sitewatch.assess.claims import check_claims
    except ImportError:
        notes.append("The assess stage is not installed: no judgements were made.")
    else:
        claims = _stored_claims(store, site.name)
        real = [c for c in comparisons if c is not None]
        try:
            checks = list(check_claims(claims, passes, real)) if claims else []
            assessment = assess_site(site, passes, real, claims)
        except SitewatchError as e:
            notes.append(f"The assessment could not be made: {e}")
    opener = _scene_opener()
    return assemble_report_data(site, passes, comparisons=comparisons, assessment=assessment, claim_checks=checks,
                                open_scene=opener, since=since, notes=notes, max_chips=max_chips)


def _stored_claims(store: Any, site: str) -> list[Any]:
    """Stored claims about the site, as the assess stage's Claim objects when it can rebuild them."""
    rows = list(store.list_claims(site)) if hasattr(store, "list_claims") else []
    try:
        from sitewatch.assess.claims import Claim
    except ImportError:
        return rows
    from_dict = getattr(Claim, "from_dict", None)
    return [from_dict(r) for r in rows] if from_dict else rows


def _scene_opener() -> SceneOpener | None:
    try:
        from sitewatch.imagery import open_scene
    except ImportError:
        log.warning("imagery.open_scene is not available: chips are skipped")
        return None

    def opener(path: str) -> Scene:
        return open_scene(path)

    return opener

