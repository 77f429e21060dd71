"""How often a type reported at probability p is right, and the temperature that makes it so.

Run: ``python -m sitewatch.identify.calibration ../shared/data [--detector MODEL] [--cache DIR]
[--figure docs/identify-reliability.png] [--write]`` (prints Markdown; the tables in
docs/identify.md come from it).

Samples, each a measured object of known type, per box source (the box-fit model measured):

* **real label boxes**: the allplanes keypoint boxes and MAR20 label boxes of
  :mod:`sitewatch.identify.evaluate` (aircraft of known type and GSD), measured with the label
  box-fit model;
* **real detector boxes**: the same aircraft measured from the matched box of the detector
  (``--detector``), with the detector's box-fit model (``data/boxfit.yaml``): what the pipeline
  measures with refinement off, and for the boxes it cannot refine;
* **real silhouette boxes**: those detector boxes refined on the image exactly as the pipeline
  does (:func:`sitewatch.identify.refine.refine_box` with the default
  :class:`~sitewatch.identify.refine.RefineSettings`), where a silhouette is found, measured with
  their detector box as one (the silhouette and detector box-fit models of ``boxfit.yaml``
  combined: :func:`~sitewatch.identify.measurement.combine_boxes`);
* **synthetic boxes**: every library type of a category drawn at a known GSD, its box made from
  the type's published dimensions with the measured box-fit noise of the source's model (bias,
  pixel and relative terms), the GSD itself off by its 1-sigma, and the type's own intrinsic
  tolerance (variants, what the box includes). Silhouette boxes are drawn with a detector box
  beside them (errors correlated as measured) and measured as one, for the refined categories
  only, at the GSDs of :data:`SYNTHETIC_GSD_M_REFINED`, and kept where the box is long enough to
  be refined (:attr:`RefineSettings.min_length_px`), as in the pipeline.

The pipeline measures a silhouette box where it finds one and the detector box otherwise
(:attr:`sitewatch.identify.Identification.box_source` keeps which), and ranks each at its own
source's temperature (:func:`~sitewatch.identify.candidates.calibrated_temperature`). The
report's ``pipeline`` rows score the real aircraft exactly so: silhouette where found, else
detector box, each at its temperature.

Two statements are checked, each by expected calibration error (ECE: 10 equal-width bins of the
stated probability, the bin-size-weighted mean of |observed frequency - mean probability|):

* **type**: the most probable candidate (unknown/other included) at its probability;
* **label**: what outputs say (:func:`sitewatch.identify.hierarchy.label_candidates`): the most
  specific of type, family, role and size class reaching the label threshold, at its probability;
  right when the true type is in the named group. Objects left "unidentified" state nothing and are
  counted apart.

Calibration: one temperature per detection category and box source on the size likelihood
(:func:`~sitewatch.identify.candidates.rank_types`), fitted on both statements' grounds
(:func:`fit_temperature` with ``keep_label``):

1. the **hierarchy Brier score** (:func:`hierarchy_brier`) is minimised: the mean over the levels
   type, family, role and size class of the Brier score of that level's group distribution
   (unknown/other a group of its own). Every label an output states is one of these group
   probabilities; the score is proper and smooth in T. The Brier score rather than the
   log-likelihood: a few boxes far off in the tails drive the log-likelihood towards flat,
   under-confident distributions;
2. the **label statement** is then kept at least as well calibrated as at T = 1: the fit moves from
   1 towards the Brier optimum only as far as the label ECE (mean over the origins) stays at most
   that at T = 1. The label statement itself is not minimised: it jumps between levels as T moves,
   and a flatter T labels fewer objects, so any score of the labelled objects alone rewards
   saying less.

With ``--detector`` the real aircraft are also scored leave-one-site-out (:func:`left_out_sites`):
each site's aircraft with the box-fit model and the aircraft temperatures fitted without it, the
figure to expect at a site not in the fit (the table's real rows are in-sample).

Real and synthetic samples of a category and source are weighted equally where both exist (the
real ones are few, of few types and sites; the synthetic ones cover every library type but only
the modelled noise); a real group of fewer than :data:`MIN_REAL` samples is reported but not fitted
on. A fitted T whose label ECE is still worse than at T = 1 on every origin scored is reported in
the output and in ``calibration.yaml`` (``label_ece_worse_than_t1``).
The label temperatures are stored for label-quality boxes
(:func:`~sitewatch.identify.candidates.calibrated_temperature` with ``boxes="label"``), while
:func:`sitewatch.identify.evaluate.evaluate_samples` ranks at temperature 1 (the tables of
``bench/identify_eval.py`` measure the model as it is). ``--write`` stores them in
``data/calibration.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import minimize_scalar

from sitewatch.identify.candidates import (
    UNKNOWN_ID,
    UNKNOWN_ROLE,
    calibrated_temperature,
    type_log_likelihoods,
)
from sitewatch.identify.hierarchy import Label, Level, label_candidates
from sitewatch.identify.library import EquipmentType, Library, load_library
from sitewatch.identify.measurement import (
    BoxFit,
    box_correlation,
    box_fit,
    combine_boxes,
    measure_box,
    refined_categories,
)
from sitewatch.identify.refine import RefineSettings
from sitewatch.types import Candidate, OrientedBox

#: Categories with library types and a box-fit model, calibrated separately.
CALIBRATED = ("aircraft", "helicopter", "ship", "large-vehicle", "small-vehicle")
#: Synthetic draws: GSDs (metres per pixel) and their relative 1-sigma (georeferenced product).
SYNTHETIC_GSD_M = {
    "aircraft": (0.3, 0.5),
    "helicopter": (0.3, 0.5),
    "ship": (0.5, 1.0),
    "large-vehicle": (0.3, 0.5),
    "small-vehicle": (0.3, 0.5),
}
#: Synthetic silhouette draws (refined categories): GSDs at which the category's boxes reach the
#: refinement's minimum length (a 36 m aircraft is 120 px at 0.3 m; the real refined aircraft are at
#: 0.18-0.22 m).
SYNTHETIC_GSD_M_REFINED = (0.15, 0.3)
SYNTHETIC_GSD_REL_SIGMA = 0.02
N_BINS = 10
#: Box sources calibrated: label-quality boxes, the detector's, and silhouettes refined on the image.
SOURCES = ("detector", "silhouette", "label")
#: Hierarchy levels whose group distributions the fit scores (:func:`hierarchy_brier`).
FIT_LEVELS: tuple[Level, ...] = ("type", "family", "role", "size")
#: Real samples of a category and source enter the fit only from this many on (fewer are reported).
MIN_REAL = 10


@dataclass(slots=True)
class Scored:
    """One measured object of known type, with the size log-likelihood of every candidate type.

    Attributes:
        category: detection category.
        source: ``"label"``, ``"detector"`` or ``"silhouette"`` boxes.
        origin: ``"real"`` or ``"synthetic"``.
        truth: the true type id.
        types: candidate types (library order of the category).
        ll: size log-likelihood per type (best box state).
        log_outlier: log density of the outlier model.
        log_prior: log prior per type (uniform share of the non-outlier mass).
        log_prior_unknown: log prior of the outlier model.
    """

    category: str
    source: str
    origin: str
    truth: str
    types: list[EquipmentType]
    ll: np.ndarray
    log_outlier: float
    log_prior: np.ndarray
    log_prior_unknown: float

    def probabilities(self, temperature: float) -> tuple[np.ndarray, float]:
        """Posterior per type and of unknown/other at ``temperature`` (the rank_types model)."""
        logits = np.append(
            self.ll / temperature + self.log_prior, self.log_outlier / temperature + self.log_prior_unknown
        )
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        return p[:-1], float(p[-1])

    def candidates(self, temperature: float) -> list[Candidate]:
        p, unknown = self.probabilities(temperature)
        out = [Candidate(t.id, t.name, t.role, float(q)) for t, q in zip(self.types, p, strict=True)]
        out.append(Candidate(UNKNOWN_ID, "unknown/other", UNKNOWN_ROLE, unknown))
        return sorted(out, key=lambda c: -c.probability)


def score(
    length_m: float, width_m: float, length_sigma_m: float, width_sigma_m: float, category: str, truth: str,
    library: Library, *, source: str, origin: str,
) -> Scored:  # fmt: skip
    """A :class:`Scored` sample from a measurement (metres, 1-sigma metres) of a known type."""
    lls, log_outlier = type_log_likelihoods(
        length_m, width_m, length_sigma_m, width_sigma_m, category, library
    )
    p_unknown = float(library.matching["categories"][category]["outlier"]["prior"])
    n = len(lls)
    return Scored(
        category, source, origin, truth, [t for _, t, _ in lls], np.array([ll for ll, _, _ in lls]),
        log_outlier, np.full(n, math.log((1.0 - p_unknown) / n)), math.log(p_unknown),
    )  # fmt: skip


def synthetic(
    category: str,
    fit: BoxFit,
    *,
    source: str,
    library: Library,
    rng: np.random.Generator,
    per_type: int,
    gsds_m: Sequence[float] | None = None,
    min_length_px: float = 0.0,
    combined: bool = False,
) -> list[Scored]:
    """Boxes of every library type of ``category`` drawn with the box-fit noise of ``fit`` (see module doc).

    The drawn box takes the type's published dimensions (a swing-wing type at a span uniform between
    swept and spread), each scaled by the type's intrinsic tolerance, then in pixels at a GSD of
    ``gsds_m`` (default :data:`SYNTHETIC_GSD_M`, taken in turn) the box-fit bias, relative and pixel
    noise; it is measured at a GSD off by :data:`SYNTHETIC_GSD_REL_SIGMA`, as the pipeline would.

    Args:
        gsds_m: GSDs to draw at, metres per pixel.
        min_length_px: draws whose box has a shorter long side (pixels) are left out: silhouette
            boxes exist only for boxes the pipeline refines (:attr:`RefineSettings.min_length_px`).
            The draws are made (and the generator advanced) either way, so a type too small at
            every GSD has no samples.
        combined: ``fit`` is the silhouette's model; a detector box is drawn beside it with the
            category's detector model, its relative error correlated with the silhouette's as
            measured (:func:`~sitewatch.identify.measurement.box_correlation`), and the two are
            measured as one (:func:`~sitewatch.identify.measurement.combine_boxes`), as the
            pipeline does; ``min_length_px`` then applies to the detector box.
    """
    det_fit, rho = (box_fit(category), np.array(box_correlation(category))) if combined else (None, None)

    def drawn(px_true: np.ndarray, f: BoxFit, z: np.ndarray) -> np.ndarray:
        px = px_true * (1.0 + np.array(f.bias_rel)) * (1.0 + np.array(f.sigma_rel) * z)
        return np.maximum(px + np.array(f.sigma_px) * rng.standard_normal(2), 1.0)

    gsds = tuple(gsds_m or SYNTHETIC_GSD_M[category])
    out = []
    for t in (t for t in library.types if t.category == category):
        tau = (
            t.tolerance_rel
            if t.tolerance_rel is not None
            else float(library.matching["categories"][category]["tolerance_rel"])
        )
        for i in range(per_type):
            gsd = gsds[i % len(gsds)]
            span = (
                rng.uniform(t.span_swept_m, t.span_spread_m or t.width_m)
                if t.span_swept_m is not None  # swing wing
                else t.width_m
            )
            long_m, short_m = max(t.length_m, span), min(t.length_m, span)
            dims = np.array([long_m, short_m]) * (1.0 + tau * rng.standard_normal(2))
            z = rng.standard_normal(2)
            px = drawn(dims / gsd, fit, z)
            box, mfit = OrientedBox(0.0, 0.0, float(px.max()), float(px.min()), 0.0), fit
            if det_fit is not None and rho is not None:
                zd = rho * z + np.sqrt(1.0 - rho**2) * rng.standard_normal(2)
                px = drawn(dims / gsd, det_fit, zd)
                det_box = OrientedBox(0.0, 0.0, float(px.max()), float(px.min()), 0.0)
                box, mfit = combine_boxes(det_box, box, category)
            gsd_assumed = gsd * (1.0 + SYNTHETIC_GSD_REL_SIGMA * rng.standard_normal())
            if px.max() < min_length_px:
                continue
            m = measure_box(box, category, gsd_m=gsd_assumed, gsd_rel_sigma=SYNTHETIC_GSD_REL_SIGMA, fit=mfit)
            out.append(
                score(
                    m.length_m,
                    m.width_m,
                    m.length_sigma_m,
                    m.width_sigma_m,
                    category,
                    t.id,
                    library,
                    source=source,
                    origin="synthetic",
                )
            )
    return out


def real(samples: Sequence[Any], library: Library) -> list[Scored]:
    """Scored aircraft from :class:`sitewatch.identify.evaluate.Sample` (label, detector or silhouette
    boxes, each measured as :meth:`~sitewatch.identify.evaluate.Sample.measured` gives it)."""
    out = []
    for s in samples:
        box, fit = s.measured()
        m = measure_box(box, "aircraft", gsd_m=s.gsd_m, gsd_rel_sigma=s.gsd_rel_sigma, fit=fit)
        out.append(
            score(
                m.length_m,
                m.width_m,
                m.length_sigma_m,
                m.width_sigma_m,
                "aircraft",
                s.type_id,
                library,
                source=s.box_source,
                origin="real",
            )
        )
    return out


# ---- statements and their reliability ---------------------------------------------------------
def _in_group(label: Label, truth: EquipmentType) -> bool:
    if label.level == "type":
        return label.key == truth.id
    if label.level == "family":
        return label.key == (truth.family or truth.id)
    if label.level == "role":
        return label.key == truth.role
    if label.level == "size":
        return label.key == truth.size_class
    return False


Temperatures = float | Mapping[str, Mapping[str, float]]


def temperature_of(s: Scored, temperature: Temperatures) -> float:
    """The temperature a sample is ranked at: one for all, or ``{source: {category: T}}``.

    A silhouette sample of a category without a silhouette temperature takes the detector's, a
    category without any 1.0 (as :func:`~sitewatch.identify.candidates.calibrated_temperature`).
    """
    if isinstance(temperature, float | int):
        return float(temperature)
    by_cat = temperature.get(s.source) or {}
    if s.category not in by_cat and s.source == "silhouette":
        by_cat = temperature.get("detector") or {}
    return float(by_cat.get(s.category, 1.0))


def statements(
    samples: Sequence[Scored],
    temperature: Temperatures,
    library: Library,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Stated probabilities and outcomes of the top type and of the hierarchy label, per sample.

    Args:
        temperature: one for all samples, or ``{source: {category: T}}`` (:func:`temperature_of`).

    Returns:
        ``{"type": (p, right), "label": (p, right), "levels": {level: n}}`` with numpy arrays;
        ``label`` holds only the objects whose label names something (not "unidentified").
    """
    tp, tr, lp, lr = [], [], [], []
    levels: dict[str, int] = {}
    for s in samples:
        cands = s.candidates(temperature_of(s, temperature))
        tp.append(cands[0].probability)
        tr.append(cands[0].type_id == s.truth)
        lab = label_candidates(cands, s.category, library=library, threshold=threshold)
        levels[lab.level] = levels.get(lab.level, 0) + 1
        if lab.identified:
            lp.append(lab.probability)
            lr.append(_in_group(lab, library.get(s.truth)))
    return {"type": (np.array(tp), np.array(tr)), "label": (np.array(lp), np.array(lr)), "levels": levels}


def reliability(p: np.ndarray, right: np.ndarray, bins: int = N_BINS) -> dict[str, Any]:
    """Expected calibration error and the reliability curve of stated probabilities ``p`` with outcomes
    ``right``.

    Returns:
        ``{"n", "ece", "accuracy", "mean_p", "bins": [(lo, hi, n, mean p, frequency right), ...]}``
        (empty bins left out); ``ece`` is None for no samples.
    """
    p, right = np.asarray(p, float), np.asarray(right, bool)
    if p.size == 0:
        return {"n": 0, "ece": None, "accuracy": None, "mean_p": None, "bins": []}
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        if not sel.any():
            continue
        conf, acc = float(p[sel].mean()), float(right[sel].mean())
        ece += sel.sum() / p.size * abs(acc - conf)
        rows.append((float(edges[b]), float(edges[b + 1]), int(sel.sum()), conf, acc))
    return {
        "n": int(p.size),
        "ece": float(ece),
        "accuracy": float(right.mean()),
        "mean_p": float(p.mean()),
        "bins": rows,
    }


def nll(samples: Sequence[Scored], temperature: float) -> float:
    """Mean negative log-probability of the true type at ``temperature``."""
    out = []
    for s in samples:
        p, _ = s.probabilities(temperature)
        i = next(i for i, t in enumerate(s.types) if t.id == s.truth)
        out.append(-math.log(max(float(p[i]), 1e-300)))
    return float(np.mean(out)) if out else 0.0


def brier(samples: Sequence[Scored], temperature: float) -> float:
    """Mean Brier score of the type distribution (unknown/other included) at ``temperature``."""
    out = []
    for s in samples:
        p, unknown = s.probabilities(temperature)
        truth = np.array([t.id == s.truth for t in s.types], dtype=float)
        out.append(float(((p - truth) ** 2).sum() + unknown**2))
    return float(np.mean(out)) if out else 0.0


def _group_index(types: Sequence[EquipmentType], level: Level, library: Library) -> tuple[np.ndarray, int]:
    """Per type, the index of its group at ``level``, and the number of groups.

    Groups as :func:`~sitewatch.identify.hierarchy.label_candidates` forms them (a type without a
    family is its own family).
    """
    keys = []
    for t in types:
        if level == "type":
            keys.append(t.id)
        elif level == "family":
            keys.append("family:" + t.family if t.family and t.family in library.families else t.id)
        elif level == "role":
            keys.append("role:" + t.role)
        else:
            keys.append("size:" + t.size_class)
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([ids[k] for k in keys]), len(ids)


def hierarchy_brier(
    samples: Sequence[Scored], temperature: float, library: Library, levels: Sequence[Level] = FIT_LEVELS
) -> float:
    """Mean over ``levels`` of the mean Brier score of each level's group distribution at ``temperature``.

    At each level the type probabilities are summed over the level's groups (family, role group,
    size class); unknown/other is a group of its own, never the truth. At the type level this is
    :func:`brier`.
    """
    if not samples:
        return 0.0
    cache: dict[tuple[int, str], tuple[np.ndarray, int]] = {}
    per_level = []
    for level in levels:
        out = []
        for s in samples:
            key = (id(s.types), level)
            if key not in cache:
                cache[key] = _group_index(s.types, level, library)
            idx, n = cache[key]
            p, unknown = s.probabilities(temperature)
            groups = np.bincount(idx, weights=p, minlength=n)
            truth = np.zeros(n)
            truth[idx[next(i for i, t in enumerate(s.types) if t.id == s.truth)]] = 1.0
            out.append(float(((groups - truth) ** 2).sum() + unknown**2))
        per_level.append(float(np.mean(out)))
    return float(np.mean(per_level))


def label_ece(groups: Sequence[Sequence[Scored]], temperature: float, library: Library) -> float | None:
    """Mean over ``groups`` of the label statement's ECE at ``temperature`` (groups labelling nothing
    left out; None when none labels anything)."""
    eces = [
        e
        for g in groups
        if (e := reliability(*statements(g, temperature, library)["label"])["ece"]) is not None
    ]
    return float(np.mean(eces)) if eces else None


def fit_temperature(
    groups: Sequence[Sequence[Scored]],
    library: Library | None = None,
    bounds: tuple[float, float] = (0.25, 8.0),
    levels: Sequence[Level] = FIT_LEVELS,
    *,
    keep_label: bool = False,
    steps: int = 12,
) -> float:
    """Temperature minimising the mean over ``groups`` of each group's :func:`hierarchy_brier` (log-scale
    search); ``levels=("type",)`` fits the Brier score of the type distribution alone.

    Args:
        keep_label: never make the label statement worse than at T = 1: of ``steps`` temperatures
            log-evenly between 1 and the Brier optimum, the one nearest the optimum whose
            :func:`label_ece` (mean over the groups) is at most that at T = 1; 1.0 when none is.
            The hierarchy Brier score is unimodal in log T, so that is the best-scoring T on the
            way that keeps what outputs say at least as well calibrated as the model left alone.
    """
    library = library or load_library()
    groups = [g for g in groups if g]
    res = minimize_scalar(lambda lt: float(np.mean([hierarchy_brier(g, math.exp(lt), library, levels)
                                                     for g in groups])),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-3})  # fmt: skip
    best = round(float(math.exp(res.x)), 3)
    if not keep_label or best == 1.0:
        return best
    at_1 = label_ece(groups, 1.0, library)
    if at_1 is None:
        return best
    for k in range(steps, 0, -1):
        t = round(math.exp(math.log(best) * k / steps), 3)
        e = label_ece(groups, t, library)
        if e is not None and e <= at_1:
            return t
    return 1.0


def label_worse(by_origin: Mapping[str, Sequence[Scored]], temperature: float, library: Library) -> bool:
    """True when the label ECE at ``temperature`` is worse than at T = 1 on every origin that labels
    something at both (the fitted T makes what users read worse on all the evidence)."""
    worse = []
    for g in by_origin.values():
        before = reliability(*statements(g, 1.0, library)["label"])["ece"]
        after = reliability(*statements(g, temperature, library)["label"])["ece"]
        if before is not None and after is not None:
            worse.append(after > before)
    return bool(worse) and all(worse)


def left_out_sites(
    found: Sequence[Any],
    refined: Sequence[Any],
    det_pairs: Sequence[Any],
    library: Library,
    *,
    seed: int,
    per_type: int,
    refine: RefineSettings,
    refine_pairs: Sequence[Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pipeline's statements on each site's aircraft with everything fitted without that site.

    For each site (:func:`sitewatch.identify.evaluate.site_of`) of the real aircraft, the aircraft
    box-fit model is refitted on the other sites' oriented detector pairs
    (:func:`~sitewatch.identify.evaluate.boxfit_without`; the silhouette correlation on the other
    sites' ``refine_pairs`` where given), the synthetic aircraft boxes are drawn
    from it, and the detector and silhouette temperatures are fitted as in :func:`main` on those and
    on the other sites' real aircraft (a real group of fewer than :data:`MIN_REAL` left out); the
    site's aircraft are then measured and ranked with that model and those temperatures.

    Args:
        found: the aircraft measured from their detector boxes
            (:func:`~sitewatch.identify.evaluate.detector_samples`).
        refined: the same aircraft as the pipeline measures them
            (:func:`~sitewatch.identify.evaluate.refine_samples`: silhouette where found, else the
            detector box).
        det_pairs: the detector's box pairs (:func:`~sitewatch.identify.evaluate.detector_box_pairs`).
        refine_pairs: detector and silhouette pairs of the same aircraft (``detector_box_pairs``
            with ``refine``), for the silhouette correlation; None keeps the bundled one.

    Returns:
        Per site ``{"site", "n", "pairs", "temperature"}``, and the statements of all sites pooled
        (``type`` and ``label`` as :func:`statements`, ``levels``).
    """
    from sitewatch.identify.evaluate import boxfit_without, site_of
    from sitewatch.identify.measurement import boxfit_model

    sites = sorted({site_of(x.dataset, x.image) for x in refined})
    per_site: list[dict[str, Any]] = []
    pooled: dict[str, Any] = {"type": ([], []), "label": ([], []), "levels": {}}
    for site in sites:
        mine = [x for x in refined if site_of(x.dataset, x.image) == site]
        doc, n_pairs = boxfit_without(
            list(det_pairs), "aircraft", site, list(refine_pairs) if refine_pairs else None
        )
        with boxfit_model(doc):
            temps: dict[str, dict[str, float]] = {}
            for src in ("detector", "silhouette"):
                rng = np.random.default_rng([seed, CALIBRATED.index("aircraft"), SOURCES.index(src)])
                refined_src = src == "silhouette"
                synth = synthetic(
                    "aircraft", box_fit("aircraft", src), source=src, library=library, rng=rng,
                    per_type=per_type, gsds_m=SYNTHETIC_GSD_M_REFINED if refined_src else None,
                    min_length_px=refine.min_length_px if refined_src else 0.0, combined=refined_src,
                )  # fmt: skip
                # detector boxes: every other aircraft's detector box; silhouettes: the refined ones
                base = found if src == "detector" else refined
                others = [x for x in base if site_of(x.dataset, x.image) != site]
                real_src = [r for r in real(others, library) if r.source == src]
                fit_groups = [synth] + ([real_src] if len(real_src) >= MIN_REAL else [])
                temps[src] = {"aircraft": fit_temperature(fit_groups, library, keep_label=True)}
            scored = real(mine, library)
        st = statements(scored, temps, library)
        for key in ("type", "label"):
            pooled[key][0].extend(st[key][0])
            pooled[key][1].extend(st[key][1])
        for level, k in st["levels"].items():
            pooled["levels"][level] = pooled["levels"].get(level, 0) + k
        per_site.append({"site": site, "n": len(mine), "pairs": n_pairs, "temperature": temps})
    for key in ("type", "label"):
        pooled[key] = (np.array(pooled[key][0], dtype=float), np.array(pooled[key][1], dtype=bool))
    return per_site, pooled


# ---- report ------------------------------------------------------------------------------------
def reliability_figure(
    panels: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]],
    path: Path,
    title: str,
    *,
    min_bin: int = 3,
) -> None:
    """Reliability diagram PNG: one panel per entry, before (dashed) and after (solid) calibration per series.

    Args:
        panels: ``{panel title: {series name: (reliability before, reliability after)}}`` (at most 4 panels,
            laid out 2 x 2); a panel whose title starts with "label" shows stated probabilities from 0.6.
        path: PNG to write (atomically).
        title: figure title.
        min_bin: bins with fewer samples are not drawn (their frequency is noise); marker area grows with n.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 5.2 * nrows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, series) in zip(axes.ravel(), panels.items(), strict=False):
        lo = 0.6 if panel.startswith("label") else 0.0
        ax.plot([lo, 1], [lo, 1], color="0.6", lw=1, label="perfectly calibrated")
        for i, (who, (before, after)) in enumerate(series.items()):
            c = colours[i % len(colours)]
            for rel, style, when in ((before, "--", "before"), (after, "-", "after")):
                pts = [b for b in rel["bins"] if b[2] >= min_bin]
                if not pts:
                    continue
                ax.plot([b[3] for b in pts], [b[4] for b in pts], style, color=c,
                        lw=1.2 if when == "after" else 0.9,
                        label=f"{who}, {when}: ECE {rel['ece']:.3f} (n={rel['n']})")  # fmt: skip
                ax.scatter([b[3] for b in pts], [b[4] for b in pts],
                           s=[4 + 2.5 * math.sqrt(b[2]) for b in pts], color=c,
                           alpha=0.9 if when == "after" else 0.4)  # fmt: skip
        ax.set_xlim(lo, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("stated probability (bin mean)")
        ax.set_ylabel("observed frequency right")
        ax.set_title(panel, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    tmp.replace(path)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _levels(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _chain(values: Sequence[float | None]) -> str:
    """``"0.057 / 0.208 / 0.050"``: the same figure at T = 1, the previous and the fitted T."""
    return " / ".join(_fmt(v) for v in values)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument(
        "--detector",
        metavar="MODEL",
        help="also the real aircraft from this detector's boxes, as they are and refined on the image "
        "(.onnx path or name)",
    )
    ap.add_argument(
        "--cache", type=Path, help="folder to cache detections in (keyed by the model's content id)"
    )
    ap.add_argument(
        "--per-type", type=int, default=30, help="synthetic boxes per library type and box source"
    )
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--figure", type=Path, help="write the reliability diagram PNG here")
    ap.add_argument(
        "--write", action="store_true", help="store the fitted temperatures in data/calibration.yaml"
    )
    args = ap.parse_args(argv)

    from sitewatch.identify import evaluate as ev
    from sitewatch.identify.evaluate import LABEL_BOX_FIT

    lib = load_library()

    def rng(cat: str, source: str) -> np.random.Generator:
        """A stream of its own per category and source: changing one group's draws leaves the others."""
        return np.random.default_rng([args.seed, CALIBRATED.index(cat), SOURCES.index(source)])

    refine = RefineSettings()  # what identify_detections uses
    samples = ev.allplanes_samples(args.data_dir) + ev.mar20_samples(args.data_dir)
    groups: dict[tuple[str, str, str], list[Scored]] = {("aircraft", "label", "real"): real(samples, lib)}
    pipeline: list[Scored] = []
    model = "no detector"
    if args.detector:
        from sitewatch.detect.onnx import OnnxDetector

        detector = OnnxDetector(args.detector)
        tag = ev.model_id(detector.backend.info.path)
        model = f"{detector.name} {detector.version} (sha256 {tag})"
        found, missed = ev.detector_samples(samples, args.data_dir, detector, cache_dir=args.cache, tag=tag)
        refined, _ = ev.refine_samples(found, args.data_dir, refine)
        pipeline = real(refined, lib)
        groups[("aircraft", "detector", "real")] = real(found, lib)
        groups[("aircraft", "silhouette", "real")] = [s for s in pipeline if s.source == "silhouette"]
        print(
            f"Real detector boxes: {model}, {len(found)} of {len(samples)} aircraft matched, {missed} "
            f"missed; refined on the image as the pipeline does: silhouette found for "
            f"{len(groups[('aircraft', 'silhouette', 'real')])} of {len(found)} (the others measured from "
            "the detector box).\n"
        )
    for cat in CALIBRATED:
        label_fit = dataclasses.replace(LABEL_BOX_FIT, elevation_frac=box_fit(cat).elevation_frac)
        groups[(cat, "label", "synthetic")] = synthetic(
            cat, label_fit, source="label", library=lib, rng=rng(cat, "label"), per_type=args.per_type
        )
        groups[(cat, "detector", "synthetic")] = synthetic(
            cat, box_fit(cat), source="detector", library=lib, rng=rng(cat, "detector"),
            per_type=args.per_type,
        )  # fmt: skip
        if cat in refined_categories():
            groups[(cat, "silhouette", "synthetic")] = synthetic(
                cat, box_fit(cat, "silhouette"), source="silhouette", library=lib, rng=rng(cat, "silhouette"),
                per_type=args.per_type, gsds_m=SYNTHETIC_GSD_M_REFINED, min_length_px=refine.min_length_px,
                combined=True,
            )  # fmt: skip

    def fitted_on(cat: str, src: str) -> dict[str, list[Scored]]:
        return {
            o: g
            for (c, s, o), g in groups.items()
            if c == cat and s == src and g and (o != "real" or len(g) >= MIN_REAL)
        }

    temps: dict[str, dict[str, float]] = {}
    free: dict[str, dict[str, float]] = {}  # the Brier optimum without the label constraint
    for src in SOURCES:
        for cat in CALIBRATED:
            if fitted_on(cat, src):
                fit_groups = list(fitted_on(cat, src).values())
                temps.setdefault(src, {})[cat] = fit_temperature(fit_groups, lib, keep_label=True)
                free.setdefault(src, {})[cat] = fit_temperature(fit_groups, lib)
    previous = {
        src: {cat: calibrated_temperature(cat, src) for cat in by_cat} for src, by_cat in temps.items()
    }
    print(
        f"Fitted temperatures (hierarchy Brier score, label ECE kept at most that at T = 1; the Brier "
        f"optimum in brackets where the label kept T from it; {args.per_type} synthetic boxes per type and "
        f"box source, seed {args.seed}):"
    )
    for src, by_cat in temps.items():
        fits = [f"{c} {t:g}" + (f" ({f:g})" if (f := free[src][c]) != t else "") for c, t in by_cat.items()]
        print(f"- {src} boxes: " + ", ".join(fits))
    for cat, src, origin in groups:
        if origin == "real" and (cat, src, "synthetic") in groups:
            alone = {
                o: fit_temperature([groups[(cat, src, o)]], lib) if len(groups[(cat, src, o)]) else None
                for o in ("real", "synthetic")
            }
            type_only = fit_temperature(list(fitted_on(cat, src).values()), lib, levels=("type",))
            print(
                f"- {cat} {src} boxes fitted on one origin alone: real {alone['real']:g}, synthetic "
                f"{alone['synthetic']:g}; on the type level alone (both origins): {type_only:g}"
            )
    worse = sorted(
        f"{src}/{cat}"
        for src, by_cat in temps.items()
        for cat, t in by_cat.items()
        if label_worse(fitted_on(cat, src), t, lib)
    )
    for key in worse:
        src, cat = key.split("/")
        print(
            f"- WARNING: {cat} {src} boxes: the label ECE at the fitted T = {temps[src][cat]:g} is worse "
            "than at T = 1 on every origin scored"
        )
    print()
    print("Figures as T = 1 / previous T / fitted T (the previous T: data/calibration.yaml before this "
          "fit).\n")  # fmt: skip
    print("| category | boxes | samples | n | T previous → fitted | type ECE | label ECE | labelled n | "
          "mean p / right, label, fitted T | levels, fitted T |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    panels: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {
        "most probable type: real aircraft": {},
        "label (type/family/role/size ≥ threshold): real aircraft": {},
        "most probable type: synthetic, as the pipeline measures": {},
        "label: synthetic, as the pipeline measures": {},
    }
    rows = list(groups.items())
    if pipeline:
        rows.insert(3, (("aircraft", "pipeline", "real"), pipeline))
    for (cat, src, origin), g in rows:
        if not g:
            continue
        if src == "pipeline":
            prev_t: Temperatures = previous
            new_t: Temperatures = temps
            t_text = "silhouette or detector"
        else:
            t_new = temps.get(src, {}).get(cat, 1.0)
            prev_t, new_t = previous.get(src, {}).get(cat, 1.0), t_new
            t_text = f"{prev_t:g} → {t_new:g}"
        st = [statements(g, t, lib) for t in (1.0, prev_t, new_t)]
        ty = [reliability(*x["type"]) for x in st]
        la = [reliability(*x["label"]) for x in st]
        print(f"| {cat} | {src} | {origin} | {len(g)} | {t_text} | {_chain([r['ece'] for r in ty])} | "
              f"{_chain([r['ece'] for r in la])} | {' / '.join(str(r['n']) for r in la)} | "
              f"{_fmt(la[2]['mean_p'])} / {_fmt(la[2]['accuracy'])} | "
              f"{_levels(st[2]['levels'])} |")  # fmt: skip
        if cat == "aircraft" and origin == "real" and src in ("pipeline", "detector"):
            panels["most probable type: real aircraft"][src] = (ty[0], ty[2])
            panels["label (type/family/role/size ≥ threshold): real aircraft"][src] = (la[0], la[2])
        elif origin == "synthetic" and (src == "silhouette" or (src == "detector" and cat != "aircraft")):
            panels["most probable type: synthetic, as the pipeline measures"][f"{cat} {src}"] = (ty[0], ty[2])
            panels["label: synthetic, as the pipeline measures"][f"{cat} {src}"] = (la[0], la[2])
    if pipeline:
        det_pairs, _ = ev.detector_box_pairs(args.data_dir, detector, cache_dir=args.cache, tag=tag)
        # The silhouettes of the same aircraft, for the correlation measured without each site.
        refine_pairs, _ = ev.detector_box_pairs(
            args.data_dir, detector, datasets=ev.REFINE_PAIR_DATASETS, cache_dir=args.cache, tag=tag,
            require_gsd=False, categories=frozenset({"aircraft"}), refine=refine,
        )  # fmt: skip
        per_site, pooled = left_out_sites(
            found, refined, det_pairs, lib, seed=args.seed, per_type=args.per_type, refine=refine,
            refine_pairs=refine_pairs,
        )  # fmt: skip
        print(
            "\nLeave-one-site-out (each site's aircraft measured and ranked with the box-fit model and "
            "the aircraft temperatures fitted without that site: `left_out_sites`):\n"
        )
        for site_row in per_site:
            site_t = site_row["temperature"]
            print(
                f"- {site_row['site']}: {site_row['n']} aircraft; box-fit model on {site_row['pairs']} other "
                f"pairs; T detector {site_t['detector']['aircraft']:g}, silhouette "
                f"{site_t['silhouette']['aircraft']:g}"
            )
        type_rel, label_rel = reliability(*pooled["type"]), reliability(*pooled["label"])
        print(
            f"- pipeline, all sites: type ECE {_fmt(type_rel['ece'])}; label ECE {_fmt(label_rel['ece'])} on "
            f"{label_rel['n']} labelled, stated at {_fmt(label_rel['mean_p'])}, right "
            f"{_fmt(label_rel['accuracy'])} "
            f"({_levels(pooled['levels'])})"
        )
    if args.figure:
        reliability_figure(
            panels,
            args.figure,
            f"Identification as the pipeline measures ({model}): before (T = 1, dashed) and after "
            "calibration (solid)",
        )
        print(f"\nreliability diagram: {args.figure}")
    if args.write:
        path = Path(__file__).parent / "data" / "calibration.yaml"
        doc: dict[str, Any] = {
            "status": f"fitted with python -m sitewatch.identify.calibration (detector: {model}; "
            f"seed {args.seed}, {args.per_type} synthetic boxes per type; hierarchy Brier score, label ECE "
            "kept at most that at T = 1)",
            "temperature": temps,
            "label_ece_worse_than_t1": worse,
        }
        head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200))
        tmp.replace(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
