"""Rank reference-library types for a measured object.

Model: for each library type ``t`` compatible with the detection's category,

    p(L, W | t) = max over box states s of  N(L; L_ts, sL^2 + (tau L_ts)^2) * N(W; W_ts, sW^2 + (tau W_ts)^2)

with the measured sorted dimensions (long side ``L``, short side ``W``) and their 1-sigma ``sL``,
``sW``, the type's sorted box dimensions in state ``s`` (swing-wing: spread, swept, or an
intermediate sweep with the span uniform between the two and integrated out; all other types one
state) and the type's intrinsic tolerance ``tau``. An explicit outlier model, uniform over
the category's size range (``matching.yaml``), takes the "unknown/other" mass. Priors: the types
share ``1 - p_unknown`` equally, multiplied by site weights (operators of the site, explicit type
weights) and renormalised; the posterior is normalised over types + unknown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from sitewatch.identify.library import EquipmentType, Library

UNKNOWN_ID = "unknown"
UNKNOWN_ROLE = "unknown/other"


@dataclass(frozen=True, slots=True)
class TypeScore:
    """Posterior of one type.

    Attributes:
        type: the library row.
        probability: normalised posterior in [0, 1].
        state: the best box state (``"spread"``/``"swept"`` for swing-wing, else ``""``).
        prior_weight: site prior multiplier applied (1.0 = none).
    """

    type: EquipmentType
    probability: float
    state: str = ""
    prior_weight: float = 1.0


@dataclass(slots=True)
class Ranking:
    """All type posteriors of one object (best first) and the unknown/other mass.

    Attributes:
        types: every compatible type, best first.
        unknown: posterior mass of the outlier ("fits nothing in the library") model.
        outlier_density: the outlier model's density, per square metre.
        prior_applied: True when site priors changed any weight.
    """

    types: list[TypeScore]
    unknown: float
    outlier_density: float
    prior_applied: bool = False
    roles: dict[str, float] = field(default_factory=dict)

    def top(self, k: int) -> list[TypeScore]:
        return self.types[:k]


def _log_normal(x: float, mu: float, sigma: float) -> float:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma * math.sqrt(2.0 * math.pi))


def _log_intermediate_sweep(
    t: EquipmentType, length_m: float, width_m: float, sl: float, sw: float, tau: float
) -> float:
    """Log-likelihood of a swing-wing type with its wings at an unknown intermediate sweep.

    The span is taken as uniform between the swept and spread spans (capped at the length, so the
    length stays the long side) and integrated out: a broad state, lower at its peak than a
    point state, so it only wins where neither end state fits.
    """
    lo = float(t.span_swept_m or t.width_m)
    hi = min(float(t.span_spread_m or t.width_m), t.length_m)
    sigma_w = math.hypot(sw, tau * (lo + hi) / 2.0)
    mass = 0.5 * (
        math.erf((hi - width_m) / (sigma_w * math.sqrt(2)))
        - math.erf((lo - width_m) / (sigma_w * math.sqrt(2)))
    )
    log_w = math.log(max(mass, 1e-300) / (hi - lo))
    return _log_normal(length_m, t.length_m, math.hypot(sl, tau * t.length_m)) + log_w


def prior_weights(
    types: list[EquipmentType], priors: Mapping[str, Any] | None, operator_weight: float
) -> dict[str, float]:
    """Site prior multipliers per type id (1.0 = no prior).

    ``priors`` follows the watchlist: ``{"operators": ["RU", "SY"], "types": {"su-24": 2.0}}``;
    types operated by one of the operators get ``operator_weight``, explicit weights multiply.
    """
    out = {t.id: 1.0 for t in types}
    if not priors:
        return out
    ops = {str(o).upper() for o in priors.get("operators") or ()}
    weights = {str(k).lower(): float(v) for k, v in (priors.get("types") or {}).items()}
    for t in types:
        w = operator_weight if ops and ops & {o.upper() for o in t.operators} else 1.0
        keys = {t.id.lower(), t.name.lower(), *(a.lower() for a in t.aliases)}
        for key in keys & weights.keys():
            w *= weights[key]
        out[t.id] = w
    return out


def type_log_likelihoods(
    length_m: float,
    width_m: float,
    length_sigma_m: float,
    width_sigma_m: float,
    category: str,
    library: Library,
) -> tuple[list[tuple[float, EquipmentType, str]], float]:
    """Size log-likelihood of every compatible type (best box state) and of the outlier model.

    Args:
        length_m, width_m: measured sizes, metres (sorted internally: long side first).
        length_sigma_m, width_sigma_m: their 1-sigma, metres.
        category: detection category; matched against the compatible library categories.
        library: the reference library.

    Returns:
        ``[(log p(L, W | t), type, state), ...]`` in library order, and ``log`` of the outlier
        density (per square metre).
    """
    if width_m > length_m:
        length_m, width_m, length_sigma_m, width_sigma_m = width_m, length_m, width_sigma_m, length_sigma_m
    params = library.matching["categories"][category]
    compatible = params.get("compatible", [category])
    (l0, l1), (w0, w1) = params["outlier"]["length_m"], params["outlier"]["width_m"]
    out: list[tuple[float, EquipmentType, str]] = []
    for t in (t for t in library.types if t.category in compatible):
        tau = (
            t.tolerance_rel
            if t.tolerance_rel is not None
            else float(library.matching["categories"][t.category]["tolerance_rel"])
        )
        best = (-math.inf, "")
        for state, tl, tw in t.box_states():
            sl = math.hypot(length_sigma_m, tau * tl)
            sw = math.hypot(width_sigma_m, tau * tw)
            ll = _log_normal(length_m, tl, sl) + _log_normal(width_m, tw, sw)
            best = max(best, (ll, state))
        if t.swing_wing:
            best = max(
                best,
                (
                    _log_intermediate_sweep(t, length_m, width_m, length_sigma_m, width_sigma_m, tau),
                    "intermediate",
                ),
            )
        out.append((best[0], t, best[1]))
    return out, -math.log((l1 - l0) * (w1 - w0))


def rank_types(
    length_m: float,
    width_m: float,
    length_sigma_m: float,
    width_sigma_m: float,
    category: str,
    library: Library,
    *,
    priors: Mapping[str, Any] | None = None,
    temperature: float | None = None,
) -> Ranking:
    """Posterior over library types (and unknown/other) for a measured object.

    Args:
        length_m, width_m: measured sizes, metres (sorted internally: long side first).
        length_sigma_m, width_sigma_m: their 1-sigma, metres.
        category: detection category; matched against the compatible library categories.
        library: the reference library.
        priors: site priors (see :func:`prior_weights`), or None.
        temperature: the size likelihoods (types and outlier) are raised to ``1 / temperature``
            before the priors multiply: > 1 flattens an over-confident ranking. Default: the
            category's calibrated temperature for detector boxes (``data/calibration.yaml``; 1.0
            where none is fitted); measurements of other box sources pass
            ``calibrated_temperature(category, source)``.
    """
    params = library.matching["categories"][category]
    p_unknown = float(params["outlier"]["prior"])
    lls, log_outlier = type_log_likelihoods(
        length_m, width_m, length_sigma_m, width_sigma_m, category, library
    )
    types = [t for _, t, _ in lls]
    if temperature is None:
        temperature = calibrated_temperature(category)
    weights = prior_weights(types, priors, float(library.matching.get("operator_prior_weight", 1.0)))
    total_w = sum(weights.values()) or 1.0
    logs = [
        (ll / temperature + math.log((1.0 - p_unknown) * weights[t.id] / total_w), t, state)
        for ll, t, state in lls
    ]
    log_unknown = log_outlier / temperature + math.log(p_unknown)
    m = max([log_unknown, *(lp for lp, _, _ in logs)])
    z = math.exp(log_unknown - m) + sum(math.exp(lp - m) for lp, _, _ in logs)
    scores = [TypeScore(t, math.exp(lp - m) / z, state, weights[t.id]) for lp, t, state in logs]
    scores.sort(key=lambda s: -s.probability)
    roles: dict[str, float] = {}
    for s in scores:
        roles[s.type.role] = roles.get(s.type.role, 0.0) + s.probability
    unknown = math.exp(log_unknown - m) / z
    roles[UNKNOWN_ROLE] = unknown
    roles = dict(sorted(roles.items(), key=lambda kv: -kv[1]))
    applied = any(abs(w - 1.0) > 1e-12 for w in weights.values())
    return Ranking(scores, unknown, math.exp(log_outlier), applied, roles)


@functools.lru_cache(maxsize=1)
def _calibration() -> dict[str, Any]:
    with (
        resources.files("sitewatch.identify.data")
        .joinpath("calibration.yaml")
        .open("r", encoding="utf-8") as f
    ):
        return yaml.safe_load(f) or {}


def calibrated_temperature(category: str, boxes: str = "detector") -> float:
    """The fitted temperature of a category's size likelihood (``data/calibration.yaml``), 1.0 if none.

    Args:
        category: detection category.
        boxes: the box source measured: ``"detector"`` (the detector's box), ``"silhouette"`` (the
            box refined on the image, :mod:`sitewatch.identify.refine`; a category without a
            silhouette temperature takes the detector's) or ``"label"`` (hand-drawn label boxes,
            for evaluation).
    """
    temps = _calibration().get("temperature") or {}
    by_cat = temps.get(boxes) or {}
    if category not in by_cat and boxes == "silhouette":
        by_cat = temps.get("detector") or {}
    return float(by_cat.get(category, 1.0))
