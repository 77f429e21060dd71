"""Registry of metric functions that indicator conditions are written in.

A metric takes the :class:`Context` (one site's passes, comparisons and claims) and the filters
of a condition, and returns a :class:`MetricValue`: a number with the evidence it was computed
from, or ``value=None`` with the reason it cannot be assessed (one pass only, no georeference,
no comparison...). Register new metrics with :func:`register_metric`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from shapely.geometry import Polygon

from sitewatch.assess import _comparison as cmp
from sitewatch.assess.convoy import find_convoys
from sitewatch.errors import SitewatchError
from sitewatch.types import Detection, Pass


class IndicatorError(SitewatchError, ValueError):
    """An indicator definition or metric is invalid, or a name is registered twice."""


@dataclass(slots=True)
class Context:
    """What the metrics see: one site's passes (oldest first), comparisons and claims.

    Attributes:
        site: the Site (zones are WGS84 polygons), or None.
        passes: passes of the site, oldest first.
        comparisons: comparisons between consecutive passes, oldest first.
        claims: claims about the site.
    """

    site: Any
    passes: list[Pass]
    comparisons: list[Any] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class MetricValue:
    """A metric's value and where it came from.

    Attributes:
        value: the number, or None when not assessable.
        evidence: references (``pass:<id>``, ``det:<id>``, ``comparison:<a>-<b>``).
        reason: why the value is None (or a note on how it was computed).
        passes: passes the value depends on (for data-quality scaling).
    """

    value: float | None
    evidence: list[str] = field(default_factory=list)
    reason: str = ""
    passes: list[Pass] = field(default_factory=list)


MetricFn = Callable[[Context, dict[str, Any]], MetricValue]
_METRICS: dict[str, tuple[MetricFn, str]] = {}
#: Filter keys every detection-counting metric understands.
DETECTION_FILTERS = {"category", "role", "type", "zone", "scope", "min_score"}


def register_metric(name: str, doc: str | None = None) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering a metric under ``name``.

    Raises:
        IndicatorError: when ``name`` is already registered.
    """

    def deco(fn: MetricFn) -> MetricFn:
        if name in _METRICS:
            raise IndicatorError(f"metric '{name}' is already registered")
        _METRICS[name] = (fn, doc or (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


def get_metric(name: str) -> MetricFn:
    """The metric function called ``name``.

    Raises:
        IndicatorError: unknown metric (the message lists the known ones).
    """
    if name not in _METRICS:
        raise IndicatorError(f"unknown metric '{name}'; known: {', '.join(sorted(_METRICS))}")
    return _METRICS[name][0]


def list_metrics() -> dict[str, str]:
    """Registered metric names and their one-line descriptions."""
    return {k: v[1] for k, v in sorted(_METRICS.items())}


# ---- detection filtering ---------------------------------------------------------------------
def _values(f: dict[str, Any], key: str) -> set[str] | None:
    v = f.get(key)
    if v is None:
        return None
    return {x.strip().lower() for x in (v if isinstance(v, list | tuple | set) else str(v).split("|"))}


def _zone(ctx: Context, name: str) -> Polygon | None:
    zones = getattr(ctx.site, "zones", None) or {}
    return zones.get(name)


def type_weight(d: Detection, f: dict[str, Any]) -> float:
    """Probability that ``d`` is of the role groups / types a filter names (1.0 when it names none).

    The sum of the calibrated probabilities of the detection's candidates of those roles/types, so
    that three aircraft each 35 % likely heavy transports weigh 1.05, not 0 or 3: a role is weighed
    by its probability, never decided by the most probable type.
    """
    roles, types = _values(f, "role"), _values(f, "type")
    if not roles and not types:
        return 1.0
    return sum(
        c.probability
        for c in d.candidates
        if c.type_id != "unknown"
        and (not roles or c.role.lower() in roles)
        and (not types or c.type_id.lower() in types)
    )


def select_weighted(ctx: Context, p: Pass, f: dict[str, Any]) -> list[tuple[Detection, float]] | None:
    """Detections of a pass passing the category/zone/score filters with their :func:`type_weight` (> 0 only).

    Returns None when a zone filter cannot be applied.
    """
    cats = _values(f, "category")
    min_score = float(f.get("min_score", 0.0))
    out = []
    for d in p.detections:
        if cats and d.category not in cats or d.score < min_score:
            continue
        w = type_weight(d, f)
        if w > 0.0:
            out.append((d, w))
    if f.get("zone"):
        zone = _zone(ctx, str(f["zone"]))
        if zone is None or any(d.footprint is None for d, _ in out):
            return None
        out = [(d, w) for d, w in out if zone.contains(Polygon(d.footprint).centroid)]
    return out


#: A pass (or a pair of passes) that observed at most this fraction of the site (or of the zone a
#: condition names) with valid pixels is "not observed": metrics on it are not assessable.
MIN_OBSERVED = 0.01


def _seen(p: Pass, f: dict[str, Any]) -> float | None:
    """Fraction 0..1 of the site (or of the filter's zone) a pass observed with valid pixels; None:
    unknown."""
    zone = f.get("zone")
    if zone and p.zone_coverage and str(zone) in p.zone_coverage:
        return float(p.zone_coverage[str(zone)])
    return p.seen_coverage


def unobserved(passes: list[Pass], f: dict[str, Any]) -> str | None:
    """Why the passes cannot be assessed for lack of observed ground, or None when they can."""
    where = f"zone '{f['zone']}'" if f.get("zone") else "the site"
    for p in passes:
        seen = _seen(p, f)
        if seen is not None and seen <= MIN_OBSERVED:
            return (
                f"not observed: pass {p.id} observed {100 * seen:.0f} % of {where} (nodata, masked or blank "
                "pixels)"
            )
    return None


def joint_observed(site: Any, first: Pass, last: Pass, f: dict[str, Any]) -> tuple[Any, str | None]:
    """The ground both passes observed (WGS84, within the filter's zone), or None when unknown; and why not
    assessable."""
    from sitewatch.imagery.validity import joint_area

    joint = joint_area(first.observed_wkt, last.observed_wkt)
    if joint is None:
        return None, None
    zones = getattr(site, "zones", None) or {}
    whole = zones.get(str(f["zone"])) if f.get("zone") else getattr(site, "aoi", None)
    if whole is not None and not whole.is_empty and whole.area > 0:
        joint = joint.intersection(whole)
        frac = joint.area / whole.area
        if frac <= MIN_OBSERVED:
            where = f"zone '{f['zone']}'" if f.get("zone") else "the site"
            return (
                joint,
                f"not observed: passes {first.id} and {last.id} observed {100 * frac:.1f} % of {where} in "
                "common",
            )
    return joint, None


def on_area(area: Any, dets: list[Detection]) -> list[Detection]:
    """The detections whose footprint centre lies on ``area`` (all of them when ``area`` is None)."""
    if area is None:
        return dets
    return [d for d in dets if d.footprint is not None and area.covers(Polygon(d.footprint).centroid)]


def select(ctx: Context, p: Pass, f: dict[str, Any]) -> list[Detection] | None:
    """Detections of a pass passing the filters; None when a zone filter cannot be applied.

    With a role or type filter a detection passes when its probability of those roles/types is at
    least one half (:func:`type_weight`); counting metrics sum the probabilities instead.
    """
    weighted = select_weighted(ctx, p, f)
    return None if weighted is None else [d for d, w in weighted if w >= 0.5]


#: Detections less likely than this to be of a filtered role/type are not cited as evidence of a count.
MIN_CITED_WEIGHT = 0.1


def _weighted_count(
    ctx: Context, p: Pass, f: dict[str, Any], area: Any = None
) -> tuple[float, list[Detection]] | None:
    """Expected number of detections of the filtered roles/types (sum of weights) and those worth citing.

    ``area``: count only detections whose footprint centre lies on it (WGS84; None: everywhere).
    """
    weighted = select_weighted(ctx, p, f)
    if weighted is None:
        return None
    if area is not None:
        kept = {id(d) for d in on_area(area, [d for d, _ in weighted])}
        weighted = [(d, w) for d, w in weighted if id(d) in kept]
    cited = [d for d, w in sorted(weighted, key=lambda dw: -dw[1]) if w >= MIN_CITED_WEIGHT]
    return sum(w for _, w in weighted), cited


def _zone_problem(ctx: Context, f: dict[str, Any]) -> str:
    if f.get("zone") and _zone(ctx, str(f["zone"])) is None:
        return f"site has no zone '{f['zone']}'"
    return "detections are not georeferenced (no footprints) so zones cannot be used"


def _refs(p: Pass, dets: list[Detection]) -> list[str]:
    return [f"pass:{p.id}", *(f"det:{d.id}" for d in dets if d.id is not None)]


# ---- metrics ---------------------------------------------------------------------------------
@register_metric("count")
def count(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Number of detections passing the filters in the latest pass (scope=first: the first pass); with
    role=/type= the sum of their probabilities."""
    if not ctx.passes:
        return MetricValue(None, reason="no passes")
    p = ctx.passes[0] if f.get("scope") == "first" else ctx.passes[-1]
    blind = unobserved([p], f)
    if blind:
        return MetricValue(None, reason=blind)
    wc = _weighted_count(ctx, p, f)
    if wc is None:
        return MetricValue(None, reason=_zone_problem(ctx, f))
    n, dets = wc
    return MetricValue(round(n, 4), _refs(p, dets), passes=[p])


def _change(ctx: Context, f: dict[str, Any]) -> tuple[MetricValue, float, float]:
    if len(ctx.passes) < 2:
        return MetricValue(None, reason="needs at least two passes"), 0, 0
    first, last = ctx.passes[0], ctx.passes[-1]
    blind = unobserved([first, last], f)
    joint, why = joint_observed(ctx.site, first, last, f)
    if blind or why:
        return MetricValue(None, reason=blind or why or ""), 0, 0
    # Counts only on ground both passes observed: what one pass could not see is not a change.
    wa, wb = _weighted_count(ctx, first, f, joint), _weighted_count(ctx, last, f, joint)
    if wa is None or wb is None:
        return MetricValue(None, reason=_zone_problem(ctx, f)), 0, 0
    (na, a), (nb, b) = wa, wb
    # Evidence: what is gone (from the first pass) and what is new (in the latest).
    refs = [f"pass:{first.id}", f"pass:{last.id}", *(cmp.ref(c) for c in ctx.comparisons)]
    refs += [f"det:{d.id}" for d in (a if nb < na else b) if d.id is not None]
    return MetricValue(round(nb - na, 4), refs, passes=[first, last]), na, nb


@register_metric("count_change")
def count_change(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Latest minus first pass count of detections passing the filters."""
    return _change(ctx, f)[0]


@register_metric("count_change_pct")
def count_change_pct(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Change of the filtered count between first and latest pass, percent of the first (first 0: 0 or +100
    per object)."""
    mv, a, b = _change(ctx, f)
    if mv.value is not None:
        mv.value = 100.0 * (b - a) / a if a else 100.0 * b
    return mv


@register_metric("abs_count_change_pct")
def abs_count_change_pct(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Absolute value of count_change_pct (for 'stable' conditions)."""
    mv = count_change_pct(ctx, f)
    if mv.value is not None:
        mv.value = abs(mv.value)
    return mv


def _status_total(ctx: Context, f: dict[str, Any], statuses: set[str]) -> MetricValue:
    if not ctx.comparisons:
        why = "needs at least two passes" if len(ctx.passes) < 2 else "no comparisons between passes"
        return MetricValue(None, reason=why)
    cats, zone = _values(f, "category"), f.get("zone")
    n, refs = 0, []
    observed = [c for c in ctx.comparisons if not cmp.not_observed(c)]
    if not observed:
        return MetricValue(None, reason=f"not observed: {cmp.not_observed(ctx.comparisons[-1])}")
    for c in observed:
        refs.append(cmp.ref(c))
        for o in cmp.objects(c):
            if cmp.status(o) not in statuses or (cats and cmp.category(o) not in cats):
                continue
            if zone and cmp.zone(o) != zone:
                continue
            n += 1
            refs.extend(f"det:{i}" for i in cmp.detection_ids(o))
    return MetricValue(float(n), refs, passes=list(ctx.passes))


@register_metric("departed")
def departed(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Objects with status 'departed' across all comparisons (filters: category, zone)."""
    return _status_total(ctx, f, {"departed"})


@register_metric("arrived")
def arrived(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Objects with status 'arrived' across all comparisons (filters: category, zone)."""
    return _status_total(ctx, f, {"arrived"})


@register_metric("changed_objects")
def changed_objects(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Objects that arrived, departed or moved in the latest comparison."""
    if not ctx.comparisons:
        return _status_total(ctx, f, set())
    if len(ctx.passes) >= 2 and not any(p.detections for p in ctx.passes[-2:]):
        # Nothing seen in either pass is not evidence that nothing changed.
        return MetricValue(None, reason="no objects detected in either of the latest passes")
    blind = unobserved(ctx.passes[-2:], f)
    if blind:
        return MetricValue(None, reason=blind)
    sub = Context(ctx.site, ctx.passes, ctx.comparisons[-1:], ctx.claims)
    return _status_total(sub, f, {"arrived", "departed", "moved"})


@register_metric("pixel_change_pct")
def pixel_change_pct(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Pixel change not explained by objects in the latest comparison, percent (zone= one zone)."""
    if not ctx.comparisons:
        return _status_total(ctx, f, set())
    c = ctx.comparisons[-1]
    if cmp.not_observed(c):
        return MetricValue(None, reason=f"not observed: {cmp.not_observed(c)}")
    v = cmp.pixel_change_pct(c, f.get("zone"))
    if v is None:
        return MetricValue(None, reason="the comparison has no pixel-change measurement")
    return MetricValue(v, [cmp.ref(c)], passes=ctx.passes[-2:])


def _positions_m(p: Pass, dets: list[Detection]) -> tuple[np.ndarray, np.ndarray] | None:
    gsd = p.gsd_m or next((d.measurement.gsd_m for d in dets if d.measurement and d.measurement.gsd_m), None)
    if not gsd:
        return None
    xy = np.array([[d.box.cx * gsd, d.box.cy * gsd] for d in dets], dtype=float).reshape(-1, 2)
    heading = np.array([d.box.heading_deg for d in dets], dtype=float)
    return xy, heading


@register_metric("convoy_length")
def convoy_length(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Vehicles in the longest convoy chain in the latest pass (params gap_m, angle_deg)."""
    if not ctx.passes:
        return MetricValue(None, reason="no passes")
    p = ctx.passes[-1]
    blind = unobserved([p], f)
    if blind:
        return MetricValue(None, reason=blind)
    dets = select(ctx, p, f)
    if dets is None:
        return MetricValue(None, reason=_zone_problem(ctx, f))
    pos = _positions_m(p, dets)
    if pos is None:
        return MetricValue(None, reason="the latest pass has no ground sample distance")
    chains = find_convoys(
        pos[0], pos[1], gap_m=float(f.get("gap_m", 30)), angle_deg=float(f.get("angle_deg", 20)), min_length=1
    )
    best = max(chains, key=len) if chains else []
    return MetricValue(float(len(best)), _refs(p, [dets[i] for i in best]), passes=[p])


@register_metric("cluster_size")
def cluster_size(ctx: Context, f: dict[str, Any]) -> MetricValue:
    """Most detections within radius_m metres of one detection in the latest pass (default 150 m)."""
    if not ctx.passes:
        return MetricValue(None, reason="no passes")
    p = ctx.passes[-1]
    blind = unobserved([p], f)
    if blind:
        return MetricValue(None, reason=blind)
    dets = select(ctx, p, f)
    if dets is None:
        return MetricValue(None, reason=_zone_problem(ctx, f))
    if not dets:
        return MetricValue(0.0, [f"pass:{p.id}"], passes=[p])
    pos = _positions_m(p, dets)
    if pos is None:
        return MetricValue(None, reason="the latest pass has no ground sample distance")
    tree = cKDTree(pos[0])
    groups = tree.query_ball_point(pos[0], r=float(f.get("radius_m", 150)))
    best = max(groups, key=len)
    return MetricValue(float(len(best)), _refs(p, [dets[i] for i in best]), passes=[p])


def quality(passes: list[Pass]) -> float:
    """Data-quality factor of the passes a value depends on: their worst observed AOI coverage, in [0.3,
    1]."""
    cov = [p.seen_coverage for p in passes if p.seen_coverage is not None]
    return float(min(1.0, max(0.3, min(cov)))) if cov else 1.0


__all__ = [
    "Context",
    "MetricValue",
    "IndicatorError",
    "register_metric",
    "get_metric",
    "list_metrics",
    "select",
    "quality",
]
