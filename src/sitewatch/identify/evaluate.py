"""Identification accuracy on labelled aircraft of known type and GSD: samples, measurement, box fit.

The samples (:func:`allplanes_samples`, :func:`mar20_samples`), their measurement and ranking
(:func:`evaluate_samples`, :func:`summarise`) and the detector's box fit against labels
(:func:`detector_box_pairs`, :func:`box_fit_stats`, :func:`detector_samples`). The program that
prints the Markdown tables of docs/identify.md is ``bench/identify_eval.py``.

Data and GSD:

* allplanes: KC-135R, A320neo, A321neo, B737-800 with nose/wingtip/tail/wingtip keypoints
  (``allplanes/original/*.json``); GSD from the label header, which the data build computed from
  the Web-Mercator tile zoom at the crop centre (``allplanes/SOURCE.md``). GSD 1-sigma taken as 3 %
  (provider resampling and orthorectification; the formula itself is exact). The DOTA label box
  was built from the keypoints (length = nose-tail, width = wingtip-wingtip), so "label box" and
  "keypoints" are one measurement here.
* mar20-sample: two C-130s (MAR20 class A2) and one B-1B (A10) in a Google Earth image of unknown
  GSD. The GSD is derived by leave-type-out cross-calibration: each object is measured with the GSD
  that makes the *other* type's published long side match its label box (the C-130s with the B-1B,
  the B-1B with the mean of the two C-130s), never with its own. GSD 1-sigma 6 % (box fit and
  variant spread of the calibrating object).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from sitewatch.dota import LabelledImage, iter_dataset
from sitewatch.geometry import match_optimal, rotated_iou
from sitewatch.identify.candidates import rank_types
from sitewatch.identify.library import EquipmentType, load_library
from sitewatch.identify.measurement import (
    BoxFit,
    box_fit,
    bundled_boxfit,
    combine_boxes,
    measure_box,
    refined_categories,
)
from sitewatch.identify.refine import RefineSettings, refine_box
from sitewatch.types import CATEGORIES, Detection, OrientedBox

log = logging.getLogger(__name__)

#: Dataset class -> library id.
TRUTH = {
    "k35r": "kc-135r",
    "a20n": "a320neo",
    "a21n": "a321neo",
    "b738w": "b737-800",
    "a2": "c-130h",
    "a10": "b-1b",
}
ALLPLANES_GSD_REL_SIGMA = 0.03
MAR20_GSD_REL_SIGMA = 0.06
#: Site priors used in the "with site prior" columns: operator of the airfield (128th ARW is a US
#: Air National Guard wing; MAR20 shows a USAF base; Airbus Hamburg-Finkenwerder is a civil plant).
SITE_PRIORS = {
    "128th": {"operators": ["US"]},
    "Airbus": {"operators": ["civil"]},
    "mar20": {"operators": ["US"]},
}
#: Box-fit model of a hand-drawn label box or keypoint pair (no detector bias): 2 px per dimension
#: from the allplanes label edge noise (:func:`label_edge_noise`), 3 % for where extremities
#: (tail point, boom) are put (:func:`keypoint_bias`). Detector boxes use ``data/boxfit.yaml``.
LABEL_BOX_FIT = BoxFit((2.0, 2.0), (0.03, 0.03), (0.0, 0.0), (0.28, 0.08))


@dataclass(slots=True)
class Sample:
    """One labelled aircraft: its box (pixels, length axis = nose-tail where known) and GSD."""

    dataset: str
    image: str
    type_id: str
    box: OrientedBox
    gsd_m: float
    gsd_rel_sigma: float
    gsd_source: str
    priors: dict[str, Any] = field(default_factory=dict)
    box_source: str = "label"
    detector_box: OrientedBox | None = None

    def measured(self, *, correct_bias: bool = True) -> tuple[OrientedBox, BoxFit]:
        """The box measured and its box-fit model, as the pipeline measures this box source.

        Label boxes take :data:`LABEL_BOX_FIT`; detector boxes their box-fit model; a silhouette
        refined from a detector box is combined with it
        (:func:`~sitewatch.identify.measurement.combine_boxes`). ``correct_bias`` False leaves
        the measured biases in.
        """
        if self.box_source == "label":
            return self.box, LABEL_BOX_FIT
        if self.box_source == "silhouette" and self.detector_box is not None:
            return combine_boxes(self.detector_box, self.box, "aircraft", correct_bias=correct_bias)
        fit = box_fit("aircraft", self.box_source)
        return self.box, fit if correct_bias else dataclasses.replace(fit, bias_rel=(0.0, 0.0))


def _keypoint_box(kp: np.ndarray) -> OrientedBox:
    """Box from (nose, wingtip, tail, wingtip): length nose-tail, width wingtip-wingtip (not sorted)."""
    nose, w1, tail, w2 = kp[:, :2].astype(float)
    axis = nose - tail
    heading = math.degrees(math.atan2(axis[0], -axis[1])) % 180.0
    c = (nose + tail) / 2.0
    return OrientedBox(float(c[0]), float(c[1]), float(np.hypot(*axis)), float(np.hypot(*(w1 - w2))), heading)


def allplanes_samples(data_dir: Path) -> list[Sample]:
    """Keypoint boxes of the allplanes aircraft with their header GSD."""
    root = Path(data_dir) / "allplanes"
    out = []
    for img in iter_dataset(root):
        doc = json.loads((root / "original" / f"{img.name}.json").read_text())
        site = img.name.split("_")[0]
        for label, kp in zip(doc["labels"], doc["keypoints"], strict=True):
            out.append(
                Sample(
                    "allplanes",
                    img.name,
                    TRUTH[label.lower()],
                    _keypoint_box(np.asarray(kp)),
                    float(img.gsd_m),  # type: ignore[arg-type]
                    ALLPLANES_GSD_REL_SIGMA,
                    "label header (Web-Mercator tile zoom)",
                    SITE_PRIORS.get(site, {}),
                )
            )
    return out


def mar20_samples(data_dir: Path) -> list[Sample]:
    """MAR20 label boxes, each with a GSD cross-calibrated from the other type (see module doc)."""
    lib = load_library()
    [img] = list(iter_dataset(Path(data_dir) / "mar20-sample"))
    objs = [(TRUTH[o.fine_class], o.box) for o in img.objects]
    out = []
    for type_id, box in objs:
        others = [(t, b) for t, b in objs if t != type_id]
        gsds = [max(lib.get(t).box_states()[0][1:]) / b.length for t, b in others]
        gsd = float(np.mean(gsds))
        src = f"cross-calibrated on {', '.join(sorted({t for t, _ in others}))} (leave-type-out)"
        out.append(
            Sample(
                "mar20-sample", img.name, type_id, box, gsd, MAR20_GSD_REL_SIGMA, src, SITE_PRIORS["mar20"]
            )
        )
    return out


def evaluate_samples(
    samples: list[Sample], *, use_priors: bool = False, k: int = 3, correct_bias: bool = True
) -> list[dict[str, Any]]:
    """Measure and rank each sample; one result row per object.

    Each box is measured as :meth:`Sample.measured` gives it (label boxes with :data:`LABEL_BOX_FIT`,
    detector boxes with their box-fit model, silhouettes combined with their detector box), the
    measured biases divided out unless ``correct_bias`` is False.
    """
    lib = load_library()

    def family(tp: EquipmentType) -> str:
        return tp.family if tp.family in lib.families else tp.id

    rows = []
    for s in samples:
        box, fit = s.measured(correct_bias=correct_bias)
        m = measure_box(box, "aircraft", gsd_m=s.gsd_m, gsd_rel_sigma=s.gsd_rel_sigma, fit=fit)
        ranking = rank_types(
            m.length_m,
            m.width_m,
            m.length_sigma_m,
            m.width_sigma_m,
            "aircraft",
            lib,
            priors=s.priors if use_priors else None,
            temperature=1.0,  # the model as it is; calibration is measured by sitewatch.identify.calibration
        )
        t = lib.get(s.type_id)
        ranked = [sc.type.id for sc in ranking.types]

        # Families ranked by their types' summed probability (a type without one is its own).
        by_family: dict[str, float] = {}
        for sc in ranking.types:
            by_family[family(sc.type)] = by_family.get(family(sc.type), 0.0) + sc.probability
        families = sorted(by_family, key=lambda f: -by_family[f])
        # Which reference dimension each measured side corresponds to: nose-tail boxes (allplanes)
        # compare directly; silhouette label boxes compare sorted (long side vs longer dimension).
        if s.dataset == "allplanes" and s.box_source == "label":
            ref_l, ref_w = t.length_m, t.width_m
        else:
            ref_l, ref_w = max(t.length_m, t.width_m), min(t.length_m, t.width_m)
        rows.append(
            {
                "dataset": s.dataset,
                "image": s.image,
                "box_source": s.box_source,
                "type": s.type_id,
                "gsd_m": round(s.gsd_m, 4),
                "gsd_source": s.gsd_source,
                "length_m": m.length_m,
                "length_sigma_m": m.length_sigma_m,
                "width_m": m.width_m,
                "width_sigma_m": m.width_sigma_m,
                "ref_length_m": ref_l,
                "ref_width_m": None if t.swing_wing else ref_w,
                "length_err_rel": m.length_m / ref_l - 1.0,
                "width_err_rel": None if t.swing_wing else m.width_m / ref_w - 1.0,
                "rank": ranked.index(s.type_id) + 1,
                "family_rank": families.index(family(t)) + 1,
                "top": [(sc.type.id, round(sc.probability, 3)) for sc in ranking.types[:k]],
                "unknown": round(ranking.unknown, 4),
                "prior_applied": ranking.prior_applied,
            }
        )
    return rows


def summarise(rows: list[dict[str, Any]], k: int = 3) -> dict[str, float]:
    """Fractions: length within 10 %, span within 10 % (of the objects with a fixed span: swing
    wings are left out), true type in top-k, true type or family in top-k (the true type among the
    k most probable types or its family among the k most probable families), true dimension within
    2 sigma."""
    n = len(rows)
    spans = [abs(r["width_err_rel"]) <= 0.10 for r in rows if r["width_err_rel"] is not None]
    within2 = []
    for r in rows:
        within2.append(abs(r["length_m"] - r["ref_length_m"]) <= 2 * r["length_sigma_m"])
        if r["ref_width_m"] is not None:
            within2.append(abs(r["width_m"] - r["ref_width_m"]) <= 2 * r["width_sigma_m"])
    return {
        "objects": n,
        "length_within_10pct": sum(abs(r["length_err_rel"]) <= 0.10 for r in rows) / n,
        "span_within_10pct": sum(spans) / len(spans) if spans else math.nan,
        "spans_checked": len(spans),
        "true_type_in_top3": sum(r["rank"] <= k for r in rows) / n,
        "true_type_or_family_in_top3": sum(min(r["rank"], r["family_rank"]) <= k for r in rows) / n,
        "true_type_top1": sum(r["rank"] == 1 for r in rows) / n,
        "dims_within_2sigma": sum(within2) / len(within2),
        "dims_checked": len(within2),
    }


def label_edge_noise(data_dir: Path) -> dict[str, float]:
    """Per-edge 1-sigma (pixels) between allplanes' drawn boxes and their keypoint envelopes (left/top
    edges)."""
    d = []
    for f in sorted((Path(data_dir) / "allplanes" / "original").glob("*.json")):
        doc = json.loads(f.read_text())
        for b, kp in zip(doc["bboxes"], doc["keypoints"], strict=True):
            k = np.asarray(kp, dtype=float)[:, :2]
            d.append([b[0] - k[:, 0].min(), b[1] - k[:, 1].min()])
    a = np.asarray(d)
    return {
        "left_sigma_px": float(a[:, 0].std(ddof=1)),
        "top_sigma_px": float(a[:, 1].std(ddof=1)),
        "n": len(a),
    }


def keypoint_bias(samples: list[Sample]) -> dict[str, tuple[float, float]]:
    """Per-type mean (measured/published - 1) of raw keypoint length and span (before bias correction)."""
    lib = load_library()
    per: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        t = lib.get(s.type_id)
        per.setdefault(s.type_id, []).append(
            (s.box.length * s.gsd_m / t.length_m - 1, s.box.width * s.gsd_m / t.width_m - 1)
        )
    return {k: tuple(float(x) for x in np.mean(v, axis=0)) for k, v in per.items()}  # type: ignore[misc]


# --- Detector boxes ------------------------------------------------------------------------------

#: Datasets used to measure the detector's box fit, with the GSD used when the label header has none
#: (VEDAI 12.5 cm and Pléiades 0.5 m from their SOURCE.md; MAR20 ~0.5 m from the cross-calibration).
#: Other datasets' images are used only when their header gives a GSD.
BOXFIT_DATASETS: dict[str, float | None] = {
    "allplanes": None,
    "mar20-sample": 0.5,
    "dota": None,
    "vedai": 0.125,
    "airbus-pleiades": 0.5,
}
#: Aircraft of oriented labels that are not identification targets, to measure the silhouette
#: refinement's box fit on (FAIR1M has no GSD: its images are detected at their own scale; box
#: ratios need none).
REFINE_FIT_DATASETS: dict[str, float | None] = {"dota": None, "fair1m": None}
#: Every dataset with oriented aircraft labels: the pairs of a detector box and its silhouette on
#: the same aircraft, for the correlation of their errors (:func:`error_correlation`). It includes
#: the identification targets' sites, like the detector's box-fit entry; a leave-one-site-out fit
#: (:func:`boxfit_without`) measures it without the scored site.
REFINE_PAIR_DATASETS: dict[str, float | None] = {
    "allplanes": None,
    "mar20-sample": 0.5,
    **REFINE_FIT_DATASETS,
}
#: Fewest aircraft with both boxes for a correlation measured again (:func:`boxfit_without`).
MIN_CORRELATION_PAIRS = 8
#: Below this label aspect ratio (length / width) the length axis, hence the heading, is undefined.
HEADING_MIN_ASPECT = 1.2


@dataclass(frozen=True, slots=True)
class BoxPair:
    """A detector box matched to a labelled object (IoU >= threshold, same category)."""

    dataset: str
    image: str
    split: str
    category: str
    axis_aligned: bool
    label: OrientedBox
    det: OrientedBox
    iou: float
    source: str = "detector"

    def dims(self) -> tuple[float, float, float, float]:
        """``(det_long, det_short, label_long, label_short)`` pixels; envelope sides for axis-aligned
        labels."""
        if self.axis_aligned:
            x0, y0, x1, y1 = self.det.envelope()
            lx0, ly0, lx1, ly1 = self.label.envelope()
            dw, dh, lw, lh = x1 - x0, y1 - y0, lx1 - lx0, ly1 - ly0
            # Pair the sides by image axis, then name the label's longer side "long".
            return (dw, dh, lw, lh) if lw >= lh else (dh, dw, lh, lw)
        return self.det.length, self.det.width, self.label.length, self.label.width

    def heading_error(self) -> float | None:
        """Detector minus label heading, degrees in [-90, 90); None without a defined label axis."""
        if self.axis_aligned or self.label.length < HEADING_MIN_ASPECT * self.label.width:
            return None
        return (self.det.heading_deg - self.label.heading_deg + 90.0) % 180.0 - 90.0


def match_boxes(
    dets: list[OrientedBox], labels: list[OrientedBox], *, axis_aligned: bool, iou_min: float = 0.5
) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(det index, label index, IoU)`` with IoU >= ``iou_min``, the most pairs then
    the highest total IoU (:func:`~sitewatch.geometry.match_optimal`), in detection order.

    Oriented labels: rotated IoU; axis-aligned labels: IoU of the detection's envelope with the label box.
    """
    iou = rotated_iou(dets, labels, envelope=axis_aligned)
    rows, cols = match_optimal(1.0 - iou, iou >= iou_min)
    return [(i, j, float(iou[i, j])) for i, j in zip(rows.tolist(), cols.tolist(), strict=True)]


def model_id(path: str | Path) -> str:
    """Short content id of a model file (first 12 hex digits of its SHA-256)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def detect_cached(
    detector: Any, image_path: Path, gsd_m: float | None, cache_dir: Path | None, tag: str
) -> list[Detection]:
    """Run ``detector`` on an image (``gsd_m`` as the scene GSD), caching the detections as JSON.

    ``tag`` (e.g. the model id) and the GSD key the cache, so a new model or another scale never
    reuses old detections. Boxes are cached at full precision (not the rounded output format):
    the silhouette refinement starts from the box, and a run from the cache must measure what a
    run without it measures.
    """
    from sitewatch.imagery import open_scene

    cache = None
    if cache_dir is not None:
        scale = "native" if gsd_m is None else f"{gsd_m:g}m"
        cache = Path(cache_dir) / f"{tag}_{image_path.parent.parent.name}_{image_path.stem}_{scale}.json"
        if cache.exists():
            return [
                Detection(OrientedBox.from_dict(d["box"]), d["category"], d["score"])
                for d in json.loads(cache.read_text())
            ]
    with open_scene(image_path, gsd_m=gsd_m, force=True) as scene:  # label GSDs
        dets = detector.detect(scene, gsd_m=gsd_m)
    if cache is not None:
        from sitewatch.output import atomic_output

        cache.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"box": d.box.to_dict(), "category": d.category, "score": d.score} for d in dets]
        with atomic_output(cache, overwrite=True, what="detection cache") as tmp:  # never half-written
            tmp.write_text(json.dumps(rows))
    return dets


def _images_with_gsd(
    data_dir: Path,
    datasets: Mapping[str, float | None],
    limit: int | None,
    require_gsd: bool = True,
    categories: frozenset[str] = frozenset(CATEGORIES),
) -> list[tuple[LabelledImage, float | None]]:
    out: list[tuple[LabelledImage, float | None]] = []
    for ds, default in datasets.items():
        root = Path(data_dir) / ds
        if not root.is_dir():
            continue
        imgs = [(img, img.gsd_m or default) for img in iter_dataset(root)]
        out += [
            (img, g)
            for img, g in imgs
            if (g is not None or not require_gsd)
            and any(not o.difficult and o.category in categories for o in img.objects)
        ][:limit]
    return out


def detector_box_pairs(
    data_dir: Path,
    detector: Any,
    *,
    datasets: Mapping[str, float | None] = BOXFIT_DATASETS,
    cache_dir: Path | None = None,
    tag: str = "model",
    limit: int | None = None,
    iou_min: float = 0.5,
    require_gsd: bool = True,
    categories: frozenset[str] = frozenset(CATEGORIES),
    refine: RefineSettings | None = None,
) -> tuple[list[BoxPair], dict[tuple[str, str], tuple[int, int]]]:
    """Run the detector on labelled images and pair its boxes with the labels.

    Args:
        require_gsd: only images with a GSD (header or ``datasets`` default); False also runs the
            detector at their own scale on images without one (box ratios need no GSD).
        categories: the categories paired.
        refine: also refine each matched box of a refined category
            (:func:`~sitewatch.identify.measurement.refined_categories`) on the image and add the
            pair of the label with the silhouette box (``source="silhouette"``) where one is found.

    Returns:
        The matched pairs and ``(dataset, category) -> (matched, labelled)`` counts of free
        (non-difficult) labelled objects.
    """
    from sitewatch.detect.train.splits import split_of
    from sitewatch.imagery import open_scene

    pairs: list[BoxPair] = []
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for img, gsd in _images_with_gsd(data_dir, datasets, limit, require_gsd, categories):
        dets = detect_cached(detector, img.image_path, gsd, cache_dir, tag)
        split = split_of(img)
        cats = {o.category for o in img.objects if not o.difficult and o.category in categories}
        for cat in sorted(cats):
            labs = [o.box for o in img.objects if o.category == cat and not o.difficult]
            dbox = [d.box for d in dets if d.category == cat]
            m = match_boxes(dbox, labs, axis_aligned=img.axis_aligned, iou_min=iou_min)
            matched = [
                BoxPair(img.dataset, img.name, split, cat, img.axis_aligned, labs[j], dbox[i], iou)
                for i, j, iou in m
            ]
            pairs += matched
            if refine is not None and cat in refined_categories() and matched:
                with open_scene(img.image_path, gsd_m=gsd, force=True) as scene:
                    for p in matched:
                        if (sil := refine_box(scene, p.det, refine)) is not None:
                            pairs.append(dataclasses.replace(p, det=sil.box, source="silhouette"))
            k, n = counts.get((img.dataset, cat), (0, 0))
            counts[(img.dataset, cat)] = (k + len(m), n + len(labs))
    return pairs, counts


def two_term_sigma(size: np.ndarray, resid2: np.ndarray) -> tuple[float, float]:
    """``(sigma_px, sigma_rel)`` of the model ``hypot(sigma_px, sigma_rel * size)``: the least-squares
    fit of its variance to squared residuals (both terms >= 0)."""
    coef, _ = nnls(np.column_stack([np.ones_like(size), size**2]), resid2)
    return float(math.sqrt(coef[0])), float(math.sqrt(coef[1]))


def box_fit_stats(pairs: list[BoxPair]) -> dict[str, float]:
    """Error of detector boxes against labels: bias (mean) and sigma (std) in pixels and relative.

    Also a two-term sigma model ``hypot(sigma_px, sigma_rel * size)`` fitted by least squares to
    the squared bias-free residuals (both terms >= 0), the form ``data/boxfit.yaml`` uses.
    """
    d = np.array([p.dims() for p in pairs], dtype=float)
    out: dict[str, float] = {"n": float(len(d))}
    for k, name in ((0, "length"), (1, "width")):
        est, ref = d[:, k], d[:, k + 2]
        err, rel = est - ref, est / ref - 1.0
        out[f"{name}_bias_px"], out[f"{name}_sigma_px"] = (
            float(err.mean()),
            float(err.std(ddof=1)) if len(d) > 1 else math.nan,
        )
        out[f"{name}_bias_rel"], out[f"{name}_sigma_rel"] = (
            float(rel.mean()),
            float(rel.std(ddof=1)) if len(d) > 1 else math.nan,
        )
        out[f"{name}_bias_rel_se"] = out[f"{name}_sigma_rel"] / math.sqrt(len(d)) if len(d) > 1 else math.nan
        out[f"{name}_fit_sigma_px"], out[f"{name}_fit_sigma_rel"] = two_term_sigma(
            ref, (est - ref * (1.0 + rel.mean())) ** 2
        )
    h = np.array([e for p in pairs if (e := p.heading_error()) is not None])
    out["heading_n"] = float(len(h))
    if len(h):
        out["heading_bias_deg"] = float(h.mean())
        out["heading_sigma_deg"] = float(np.sqrt((h**2).mean()))
        out["heading_median_abs_deg"] = float(np.median(np.abs(h)))
    return out


#: Smallest pixel term of a fitted box-fit model: the label-edge noise measured on allplanes
#: (2 px; 1.5 px for vehicles), so that small objects keep a floor (``data/boxfit.yaml``).
BOXFIT_FLOOR_PX: dict[str, float] = {
    "aircraft": 2.0,
    "helicopter": 2.0,
    "ship": 2.0,
    "large-vehicle": 1.5,
    "small-vehicle": 1.5,
}


def boxfit_entry(pairs: list[BoxPair], category: str, *, min_site_pairs: int = 3) -> dict[str, list[float]]:
    """A category's box-fit model fitted on ``pairs`` by the rule of ``data/boxfit.yaml``.

    Where at least two sites (:func:`site_of`) have ``min_site_pairs`` pairs or more, the model is a
    random-effects one (pairs of smaller sites are left out): ``bias_rel`` is the random-effects
    common mean of the sites' mean relative errors (:func:`random_effects`), ``sigma_site_rel`` the
    standard deviation of the sites' own biases about it (what a correction fitted elsewhere
    misses at a new site), and ``sigma_px`` and ``sigma_rel`` the two-term fit of the residuals
    about each site's own mean (within a site). Otherwise ``bias_rel`` is the pooled mean relative
    error and ``sigma_px``, ``sigma_rel`` the two-term fit of :func:`box_fit_stats`. The pixel
    term is held at :data:`BOXFIT_FLOOR_PX` where the fit puts it lower.
    """
    floor = BOXFIT_FLOOR_PX[category]
    sides = ("length", "width")
    by_site: dict[str, list[BoxPair]] = {}
    for p in pairs:
        by_site.setdefault(site_of(p.dataset, p.image), []).append(p)
    groups = [q for q in by_site.values() if len(q) >= max(min_site_pairs, 2)]
    if len(groups) < 2:
        st = box_fit_stats(pairs)
        return {
            "sigma_px": [round(max(floor, st[f"{k}_fit_sigma_px"]), 1) for k in sides],
            "sigma_rel": [round(st[f"{k}_fit_sigma_rel"], 3) for k in sides],
            "bias_rel": [round(st[f"{k}_bias_rel"], 3) for k in sides],
        }
    stats = [box_fit_stats(q) for q in groups]
    entry: dict[str, list[float]] = {"sigma_px": [], "sigma_rel": [], "bias_rel": [], "sigma_site_rel": []}
    for i, k in enumerate(sides):
        mean, tau = random_effects(
            np.array([st[f"{k}_bias_rel"] for st in stats]),
            np.array([st[f"{k}_bias_rel_se"] for st in stats]),
        )
        refs, resid2 = [], []
        for q, st in zip(groups, stats, strict=True):
            d = np.array([p.dims() for p in q], dtype=float)
            est, ref = d[:, i], d[:, i + 2]
            # residuals about the site's own mean, n/(n-1) for the mean they lose
            resid2.append((est - ref * (1.0 + st[f"{k}_bias_rel"])) ** 2 * len(q) / (len(q) - 1))
            refs.append(ref)
        sigma_px, sigma_rel = two_term_sigma(np.concatenate(refs), np.concatenate(resid2))
        entry["sigma_px"].append(round(max(floor, sigma_px), 1))
        entry["sigma_rel"].append(round(sigma_rel, 3))
        entry["bias_rel"].append(round(mean, 3))
        entry["sigma_site_rel"].append(round(tau, 3))
    return entry


def random_effects(bias: np.ndarray, se: np.ndarray) -> tuple[float, float]:
    """Random-effects common mean and between-group standard deviation (DerSimonian–Laird).

    Args:
        bias: each group's mean.
        se: each mean's standard error.

    Returns:
        ``(mean, tau)``: ``tau`` is the standard deviation of the groups' true means that the spread
        of ``bias`` leaves once its own standard errors are accounted for (0 when they explain it);
        ``mean`` weighs each group by ``1 / (se² + tau²)``.
    """
    w = 1.0 / np.maximum(se, 1e-6) ** 2
    fixed = float((w * bias).sum() / w.sum())
    q = float((w * (bias - fixed) ** 2).sum())
    c = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = max(0.0, (q - (len(bias) - 1)) / c) if c > 0 else 0.0
    w_re = 1.0 / (np.maximum(se, 1e-6) ** 2 + tau2)
    return float((w_re * bias).sum() / w_re.sum()), math.sqrt(tau2)


#: Map-tile providers in allplanes image names (``<site>_<provider>_<yymmdd>_...``).
_TILE_PROVIDER = re.compile(r"^(?P<site>.+?)_(?:google|bing|mapbox)_\d{6}_")


def site_of(dataset: str, image: str) -> str:
    """The site an image shows, for leave-one-site-out fits: allplanes names it before the tile
    provider (the same base on several dates and providers is one site); other datasets count as
    one site each."""
    if dataset == "allplanes" and (m := _TILE_PROVIDER.match(image)):
        return f"allplanes:{m['site']}"
    return dataset


def oriented_detector_pairs(pairs: list[BoxPair], category: str) -> list[BoxPair]:
    """The detector-box pairs of ``category`` with oriented labels (those the box-fit model is fitted on)."""
    return [p for p in pairs if p.category == category and p.source == "detector" and not p.axis_aligned]


def site_bias_spread(pairs: list[BoxPair], category: str, min_pairs: int = 3) -> dict[str, float]:
    """Between-site spread of the detector's relative box bias (random-effects, DerSimonian–Laird).

    Each site (:func:`site_of`) with at least ``min_pairs`` oriented detector pairs of ``category``
    gives a mean relative error and its standard error per side; ``tau`` is the standard deviation
    of the true site biases about their common mean that the spread of those means leaves once their
    own standard errors are accounted for (0 when they explain it). A box-fit correction fitted on
    some sites misses a new site's bias by about ``tau``.

    Returns:
        ``sites``, and per side (``length``, ``width``): ``{side}_mean`` (the random-effects common mean)
        and ``{side}_tau`` (:func:`random_effects`).
    """
    by_site: dict[str, list[BoxPair]] = {}
    for p in oriented_detector_pairs(pairs, category):
        by_site.setdefault(site_of(p.dataset, p.image), []).append(p)
    stats = [box_fit_stats(q) for q in by_site.values() if len(q) >= min_pairs]
    out: dict[str, float] = {"sites": float(len(stats))}
    for side in ("length", "width"):
        if len(stats) < 2:
            out[f"{side}_mean"] = out[f"{side}_tau"] = math.nan
            continue
        out[f"{side}_mean"], out[f"{side}_tau"] = random_effects(
            np.array([st[f"{side}_bias_rel"] for st in stats]),
            np.array([st[f"{side}_bias_rel_se"] for st in stats]),
        )
    return out


def boxfit_without(
    pairs: list[BoxPair], category: str, site: str, refine_pairs: list[BoxPair] | None = None
) -> tuple[dict[str, Any], int]:
    """The bundled box-fit model with ``category``'s detector entry refitted on the oriented
    detector pairs of every site but ``site`` (:func:`site_of`; leave-one-site-out).

    A silhouette entry's between-site term, which ``data/boxfit.yaml`` takes from the detector's
    (its pairs come from one site), follows the refit.

    Args:
        refine_pairs: detector and silhouette pairs of the same labels (:func:`detector_box_pairs`
            with ``refine``, e.g. on :data:`REFINE_PAIR_DATASETS`); where given, the silhouette
            entry's ``correlation`` is measured again on the other sites' aircraft that have both
            boxes (:func:`error_correlation`; taken as 0, with a warning, where fewer than
            :data:`MIN_CORRELATION_PAIRS` have or it is undefined: the bundled value includes the
            site).

    Returns:
        The model (for :func:`~sitewatch.identify.measurement.boxfit_model`) and how many pairs
        it was fitted on.
    """
    kept = [p for p in oriented_detector_pairs(pairs, category) if site_of(p.dataset, p.image) != site]
    if len(kept) < 3:
        raise ValueError(f"{len(kept)} {category} pairs outside {site}: too few to fit a box-fit model")
    doc = bundled_boxfit()
    entry = doc["categories"][category]
    entry.pop("sigma_site_rel", None)  # a pooled refit has no between-site term
    entry.update(boxfit_entry(kept, category))
    silhouette = doc.get("silhouette", {}).get("categories", {}).get(category)
    if silhouette is not None and "sigma_site_rel" in silhouette:  # borrowed from the detector's
        if "sigma_site_rel" in entry:
            silhouette["sigma_site_rel"] = list(entry["sigma_site_rel"])
        else:
            del silhouette["sigma_site_rel"]
    if silhouette is not None and refine_pairs:
        others = [
            p
            for p in refine_pairs
            if p.category == category and not p.axis_aligned and site_of(p.dataset, p.image) != site
        ]
        (rho_l, rho_w), n = error_correlation(others)
        if n >= MIN_CORRELATION_PAIRS and math.isfinite(rho_l) and math.isfinite(rho_w):
            silhouette["correlation"] = [round(rho_l, 2), round(rho_w, 2)]
        else:  # the bundled value was measured with this site: none is known without it
            log.warning(
                "%s: %d %s pairs with both boxes outside it, too few for the silhouette correlation; "
                "taken as 0",
                site,
                n,
                category,
            )
            silhouette["correlation"] = [0.0, 0.0]
    return doc, len(kept)


def error_correlation(pairs: list[BoxPair], *, min_site_pairs: int = 3) -> tuple[tuple[float, float], int]:
    """Correlation of the detector's and the silhouette's relative box errors on the same objects,
    within sites.

    Each site's (:func:`site_of`) errors are taken about that site's own mean before they are
    pooled: the sites' biases differ (``sigma_site_rel``), and pooling raw errors would mix those
    differences of means into the correlation of the two boxes' errors on one object. Sites with
    fewer than ``min_site_pairs`` objects with both boxes are left out.

    Args:
        pairs: detector pairs and silhouette pairs (``source``) of the same labels, as
            :func:`detector_box_pairs` returns them with ``refine``.

    Returns:
        Pearson correlation ``(length, width)`` of ``box / label - 1`` about each site's mean
        between the two sources, over the labels that have both (the ``correlation`` of
        ``data/boxfit.yaml``'s silhouette entry), and how many labels that is; NaN where fewer
        than 3 or where either source's errors do not vary.
    """
    rel: dict[str, dict[tuple[str, str, OrientedBox], np.ndarray]] = {"detector": {}, "silhouette": {}}
    for p in pairs:
        if p.source in rel:
            d = np.array(p.dims(), dtype=float)
            rel[p.source][(p.dataset, p.image, p.label)] = d[:2] / d[2:] - 1.0
    by_site: dict[str, list[tuple[str, str, OrientedBox]]] = {}
    for k in rel["silhouette"]:
        if k in rel["detector"]:
            by_site.setdefault(site_of(k[0], k[1]), []).append(k)
    det_parts, sil_parts = [], []
    for keys in by_site.values():
        if len(keys) >= min_site_pairs:
            det = np.array([rel["detector"][k] for k in keys])
            sil = np.array([rel["silhouette"][k] for k in keys])
            det_parts.append(det - det.mean(axis=0))
            sil_parts.append(sil - sil.mean(axis=0))
    n = sum(len(d) for d in det_parts)
    if n < 3:
        return (math.nan, math.nan), n
    det, sil = np.concatenate(det_parts), np.concatenate(sil_parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = [float(np.corrcoef(det[:, i], sil[:, i])[0, 1]) for i in (0, 1)]
    return (rho[0], rho[1]), n


def detector_samples(
    samples: list[Sample], data_dir: Path, detector: Any, *, cache_dir: Path | None = None, tag: str = "model"
) -> tuple[list[Sample], int]:
    """The samples with their label box replaced by the matched detector box (rotated IoU >= 0.5).

    Returns:
        The matched samples (``box_source="detector"``) and the number of samples with no match.
    """
    out, missed = [], 0
    by_image: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        by_image.setdefault((s.dataset, s.image), []).append(s)
    for (ds, name), group in by_image.items():
        [img] = [i for i in iter_dataset(Path(data_dir) / ds) if i.name == name]
        dets = [
            d.box
            for d in detect_cached(detector, img.image_path, group[0].gsd_m, cache_dir, tag)
            if d.category == "aircraft"
        ]
        m = {j: i for i, j, _ in match_boxes(dets, [s.box for s in group], axis_aligned=False)}
        for j, s in enumerate(group):
            if j in m:
                out.append(dataclasses.replace(s, box=dets[m[j]], box_source="detector"))
            else:
                missed += 1
    return out, missed


def refine_samples(
    samples: list[Sample], data_dir: Path, settings: RefineSettings | None = None
) -> tuple[list[Sample], list[float]]:
    """Detector-box samples with their box refined on the image where a silhouette is found.

    Returns:
        The samples (``box_source="silhouette"`` with the detector's box kept in ``detector_box``
        where refined, else unchanged) and the seconds each refinement took.
    """
    from sitewatch.imagery import open_scene

    paths = {
        (ds, img.name): img.image_path
        for ds in {s.dataset for s in samples}
        for img in iter_dataset(Path(data_dir) / ds)
    }
    out, seconds = [], []
    for s in samples:
        with open_scene(paths[(s.dataset, s.image)], gsd_m=s.gsd_m, force=True) as scene:
            t0 = time.perf_counter()
            sil = refine_box(scene, s.box, settings)
            seconds.append(time.perf_counter() - t0)
        out.append(
            s
            if sil is None
            else dataclasses.replace(s, box=sil.box, box_source="silhouette", detector_box=s.box)
        )
    return out, seconds
