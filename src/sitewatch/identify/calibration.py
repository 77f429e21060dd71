"""How often a type reported at probability p is right, and the temperature that makes it so.

Run: ``python -m sitewatch.identify.calibration ../shared/data [--detector MODEL] [--cache DIR]
[--figure docs/identify-reliability.png] [--write]`` (prints Markdown; the tables in
docs/identify.md come from it).

Samples, each a measured object of known type:

* **real label boxes**: the allplanes keypoint boxes and MAR20 label boxes of
  :mod:`sitewatch.identify.evaluate` (aircraft of known type and GSD), measured with the label
  box-fit model;
* **real detector boxes**: the same aircraft measured from the matched box of the detector
  (``--detector``), with the detector's box-fit model (``data/boxfit.yaml``);
* **synthetic boxes**: every library type of a category drawn at a known GSD, its box made from
  the type's published dimensions with the measured box-fit noise of ``boxfit.yaml`` (bias, pixel
  and relative terms; detector boxes) or of the label model (label boxes), the GSD itself off by
  its 1-sigma, and the type's own intrinsic tolerance (variants, what the box includes).

Two statements are checked, each by expected calibration error (ECE: 10 equal-width bins of the
stated probability, the bin-size-weighted mean of |observed frequency - mean probability|):

* **type**: the most probable candidate (unknown/other included) at its probability;
* **label**: what outputs say (:func:`sitewatch.identify.hierarchy.label_candidates`): the most
  specific of type, family, role and size class reaching the label threshold, at its probability;
  right when the true type is in the named group. Objects left "unidentified" state nothing and are
  counted apart.

Calibration: one temperature per detection category and box source on the size likelihood
(:func:`~sitewatch.identify.candidates.rank_types`), fitted by minimising the Brier score of the
whole type distribution (unknown/other included) over that category's samples of that source, the
real and the synthetic samples weighted equally where both exist. The Brier score rather than the
log-likelihood: a few boxes far off in the tails (where the log-likelihood of the true type is
very low) drive the log-likelihood towards flat distributions that are then under-confident in
their top type. The pipeline measures detector boxes and uses the detector temperatures; the label
temperatures are stored for label-quality boxes (:func:`~sitewatch.identify.candidates.calibrated_temperature`
with ``boxes="label"``), while :func:`sitewatch.identify.evaluate.evaluate_samples` ranks at
temperature 1 (the tables of ``bench/identify_eval.py`` measure the model as it is). ``--write``
stores them in ``data/calibration.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import minimize_scalar

from sitewatch.identify.candidates import UNKNOWN_ID, UNKNOWN_ROLE, type_log_likelihoods
from sitewatch.identify.hierarchy import Label, label_candidates
from sitewatch.identify.library import EquipmentType, Library, load_library
from sitewatch.identify.measurement import BoxFit, box_fit, measure_box
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
SYNTHETIC_GSD_REL_SIGMA = 0.02
N_BINS = 10


@dataclass(slots=True)
class Scored:
    """One measured object of known type, with the size log-likelihood of every candidate type.

    Attributes:
        category: detection category.
        source: ``"label"`` or ``"detector"`` boxes.
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
    category: str, fit: BoxFit, *, source: str, library: Library, rng: np.random.Generator, per_type: int
) -> list[Scored]:
    """Boxes of every library type of ``category`` drawn with the box-fit noise of ``fit`` (see module doc).

    The drawn box takes the type's published dimensions (a swing-wing type at a span uniform between
    swept and spread), each scaled by the type's intrinsic tolerance, then in pixels at a GSD of
    :data:`SYNTHETIC_GSD_M` the box-fit bias, relative and pixel noise; it is measured at a GSD off
    by :data:`SYNTHETIC_GSD_REL_SIGMA`, as the pipeline would.
    """
    out = []
    for t in (t for t in library.types if t.category == category):
        tau = (
            t.tolerance_rel
            if t.tolerance_rel is not None
            else float(library.matching["categories"][category]["tolerance_rel"])
        )
        for i in range(per_type):
            gsd = SYNTHETIC_GSD_M[category][i % len(SYNTHETIC_GSD_M[category])]
            span = (
                rng.uniform(t.span_swept_m, t.span_spread_m or t.width_m)
                if t.span_swept_m is not None  # swing wing
                else t.width_m
            )
            long_m, short_m = max(t.length_m, span), min(t.length_m, span)
            dims = np.array([long_m, short_m]) * (1.0 + tau * rng.standard_normal(2))
            px = dims / gsd
            px = (
                px * (1.0 + np.array(fit.bias_rel)) * (1.0 + np.array(fit.sigma_rel) * rng.standard_normal(2))
            )
            px = np.maximum(px + np.array(fit.sigma_px) * rng.standard_normal(2), 1.0)
            gsd_assumed = gsd * (1.0 + SYNTHETIC_GSD_REL_SIGMA * rng.standard_normal())
            box = OrientedBox(0.0, 0.0, float(px.max()), float(px.min()), 0.0)
            m = measure_box(box, category, gsd_m=gsd_assumed, gsd_rel_sigma=SYNTHETIC_GSD_REL_SIGMA, fit=fit)
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
    """Scored aircraft from :class:`sitewatch.identify.evaluate.Sample` (label or detector boxes)."""
    from sitewatch.identify.evaluate import LABEL_BOX_FIT

    out = []
    for s in samples:
        fit = LABEL_BOX_FIT if s.box_source == "label" else box_fit("aircraft")
        m = measure_box(s.box, "aircraft", gsd_m=s.gsd_m, gsd_rel_sigma=s.gsd_rel_sigma, fit=fit)
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


def statements(
    samples: Sequence[Scored],
    temperature: float | dict[str, float],
    library: Library,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Stated probabilities and outcomes of the top type and of the hierarchy label, per sample.

    Returns:
        ``{"type": (p, right), "label": (p, right), "levels": {level: n}}`` with numpy arrays;
        ``label`` holds only the objects whose label names something (not "unidentified").
    """
    tp, tr, lp, lr = [], [], [], []
    levels: dict[str, int] = {}
    for s in samples:
        temp = temperature if isinstance(temperature, float | int) else temperature.get(s.category, 1.0)
        cands = s.candidates(float(temp))
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


def fit_temperature(groups: Sequence[Sequence[Scored]], bounds: tuple[float, float] = (0.25, 8.0)) -> float:
    """Temperature minimising the mean over ``groups`` of each group's mean Brier score (log-scale search)."""
    groups = [g for g in groups if g]
    res = minimize_scalar(lambda lt: float(np.mean([brier(g, math.exp(lt)) for g in groups])),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-3})  # fmt: skip
    return round(float(math.exp(res.x)), 3)


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument(
        "--detector",
        metavar="MODEL",
        help="also the real aircraft from this detector's boxes (.onnx path or name)",
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
    rng = np.random.default_rng(args.seed)
    samples = ev.allplanes_samples(args.data_dir) + ev.mar20_samples(args.data_dir)
    groups: dict[tuple[str, str, str], list[Scored]] = {("aircraft", "label", "real"): real(samples, lib)}
    model = "no detector"
    if args.detector:
        from sitewatch.detect.onnx import OnnxDetector

        detector = OnnxDetector(args.detector)
        tag = ev.model_id(detector.backend.info.path)
        model = f"{detector.name} {detector.version} (sha256 {tag})"
        found, missed = ev.detector_samples(samples, args.data_dir, detector, cache_dir=args.cache, tag=tag)
        groups[("aircraft", "detector", "real")] = real(found, lib)
        print(
            f"Real detector boxes: {model}, {len(found)} of {len(samples)} aircraft matched, {missed} "
            "missed.\n"
        )
    for cat in CALIBRATED:
        label_fit = dataclasses.replace(LABEL_BOX_FIT, elevation_frac=box_fit(cat).elevation_frac)
        groups[(cat, "label", "synthetic")] = synthetic(
            cat, label_fit, source="label", library=lib, rng=rng, per_type=args.per_type
        )
        groups[(cat, "detector", "synthetic")] = synthetic(
            cat, box_fit(cat), source="detector", library=lib, rng=rng, per_type=args.per_type
        )

    temps = {
        src: {
            cat: fit_temperature([g for (c, s, _), g in groups.items() if c == cat and s == src])
            for cat in CALIBRATED
        }
        for src in ("detector", "label")
    }
    print(f"Fitted temperatures ({args.per_type} synthetic boxes per type and box source, seed {args.seed}):")
    for src, by_cat in temps.items():
        print(f"- {src} boxes: " + ", ".join(f"{c} {t:g}" for c, t in by_cat.items()))
    for src in ("detector", "label"):
        if ("aircraft", src, "real") in groups:
            alone = {o: fit_temperature([groups[("aircraft", src, o)]]) for o in ("real", "synthetic")}
            print(
                f"- aircraft {src} boxes fitted on one origin alone: real {alone['real']:g}, synthetic "
                f"{alone['synthetic']:g}"
            )
    print()
    print("| category | boxes | samples | n | T | type ECE before | type ECE after | mean p / right after | "
          "label ECE before | label ECE after | labelled (n) after | mean p / right after | "
          "levels after |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    panels: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {
        "most probable type: aircraft, detector boxes": {},
        "label (type/family/role/size ≥ threshold): aircraft, detector boxes": {},
        "most probable type: other categories, synthetic detector boxes": {},
        "label: other categories, synthetic detector boxes": {},
    }
    for (cat, src, origin), g in groups.items():
        before, after = statements(g, 1.0, lib), statements(g, temps[src][cat], lib)
        tb, ta = reliability(*before["type"]), reliability(*after["type"])
        lb, la = reliability(*before["label"]), reliability(*after["label"])
        levels = ", ".join(f"{k} {v}" for k, v in sorted(after["levels"].items(), key=lambda kv: -kv[1]))
        print(f"| {cat} | {src} | {origin} | {len(g)} | {temps[src][cat]:g} | "
              f"{_fmt(tb['ece'])} | {_fmt(ta['ece'])} | {_fmt(ta['mean_p'])} / {_fmt(ta['accuracy'])} | "
              f"{_fmt(lb['ece'])} | {_fmt(la['ece'])} | {la['n']} | "
              f"{_fmt(la['mean_p'])} / {_fmt(la['accuracy'])} | {levels} |")  # fmt: skip
        if src == "detector":
            keys = list(panels) if cat == "aircraft" else list(panels)[2:]
            who = origin if cat == "aircraft" else cat
            panels[keys[0]][who] = (tb, ta)
            panels[keys[1]][who] = (lb, la)
    if args.figure:
        reliability_figure(
            panels,
            args.figure,
            f"Identification from detector boxes ({model}): before (T = 1, dashed) and after calibration "
            "(solid)",
        )
        print(f"\nreliability diagram: {args.figure}")
    if args.write:
        path = Path(__file__).parent / "data" / "calibration.yaml"
        doc = {"status": f"fitted with python -m sitewatch.identify.calibration (detector: {model}; "
                         f"seed {args.seed}, {args.per_type} synthetic boxes per type)",
               "temperature": temps}  # fmt: skip
        head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200))
        tmp.replace(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
