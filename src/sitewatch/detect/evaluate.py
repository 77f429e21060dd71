"""Evaluate a detector on labelled imagery (DOTA labelTxt folders).

Metrics, per category (see docs/detect.md for the full definitions):

* **AP50**: VOC-style average precision with all-point interpolation, a prediction being a true
  positive when its IoU with a labelled object of its category is ≥ 0.5 (each object matched
  once, highest-scoring prediction first). IoU is the *rotated* IoU of the oriented polygons; for
  datasets labelled with axis-aligned boxes (``LabelledImage.axis_aligned``) the *envelope* of the
  predicted box is compared with the label box.
* **precision / recall** at the operating score thresholds (by default the model's shipped
  ones, per category when the model has them).
* **count MAPE**: mean over images of the absolute percentage count error
  ``100 * |predicted - labelled| / max(labelled, 1)`` (predicted = predictions at the operating
  threshold that are not ignored). An image with no labelled object of the category thus scores
  100 % per false detection, and 0 % when it has none.

Vehicles are also scored as two pooled groups: ``vehicle`` pools both size classes with matching
still per class (a truck found as a small vehicle is a miss and a false small vehicle), and
``vehicle-any-size`` matches a prediction of either class to a labelled vehicle of either class,
each prediction at its own class's threshold (the truck is a vehicle found).

Difficult objects and objects of "ignore" classes neither reward nor penalise: a prediction whose
best match is a difficult object of its category, or that lies mostly (≥ 50 % of its area) on an
"ignore" object, is dropped from every metric. Only categories a dataset labels are scored on its
images (hrplanes labels no vehicles, so vehicle predictions there are not counted as false).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from sitewatch.detect.base import Detector
from sitewatch.dota import LabelledImage, iter_dataset, load_class_map
from sitewatch.errors import SceneError
from sitewatch.geometry import match_greedy, polygon_iou, polygons
from sitewatch.imagery.base import Scene
from sitewatch.types import CATEGORIES, Detection

log = logging.getLogger(__name__)

#: Share of a prediction's area lying on an "ignore"-class object that makes it ignored.
IGNORE_COVER = 0.5

TP, FP, IGNORED = 1, 0, -1

#: Category groups also scored as one (their predictions and objects pooled, matching still per
#: category): the two vehicle sizes, whose boundary is fuzzy in the labels.
POOLED = {"vehicle": ("large-vehicle", "small-vehicle")}
#: Category groups also scored as one class: a prediction of any member category matches a labelled
#: object of any member (a truck found as a small vehicle is a vehicle found). Each prediction
#: keeps its own category's operating threshold.
ANY_OF = {"vehicle-any-size": ("large-vehicle", "small-vehicle")}


def average_precision(scores: np.ndarray, is_tp: np.ndarray, n_objects: int) -> float | None:
    """VOC all-point interpolated AP of scored predictions (ignored ones already removed).

    Args:
        scores: prediction scores.
        is_tp: True for true positives.
        n_objects: labelled (non-difficult) objects; None is returned when 0.
    """
    if n_objects <= 0:
        return None
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.asarray(is_tp, dtype=float)[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = ctp / n_objects
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_objects(
    pred_polys: np.ndarray,
    scores: np.ndarray,
    gt_polys: np.ndarray,
    gt_difficult: np.ndarray,
    ignore_polys: np.ndarray | None = None,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Outcome of each prediction of one category on one image: :data:`TP`, :data:`FP` or :data:`IGNORED`.

    VOC rule (:func:`~sitewatch.geometry.match_greedy`): predictions in descending score order take
    their best-IoU labelled object (difficult ones included); IoU ≥ threshold with a difficult object
    → ignored, with a free object → TP, with an object already taken → FP. Below the threshold a
    prediction lying mostly on an "ignore"
    object is ignored, else FP.

    Returns:
        The outcome per prediction, and per labelled object whether a prediction took it (an object
        neither taken nor difficult is missed).
    """
    n = len(pred_polys)
    out = np.full(n, FP, dtype=np.int8)
    taken = np.zeros(len(gt_polys), dtype=bool)
    if n == 0:
        return out, taken
    best, matched = match_greedy(polygon_iou(pred_polys, gt_polys), scores, iou_threshold)
    taken[best[matched]] = True
    covered = np.zeros(n)
    if ignore_polys is not None and len(ignore_polys):
        region = shapely.union_all(ignore_polys)
        covered = shapely.area(shapely.intersection(pred_polys, region)) / np.maximum(
            shapely.area(pred_polys), 1e-12
        )
    hit = best >= 0
    on_difficult = np.zeros(n, dtype=bool)
    on_difficult[hit] = np.asarray(gt_difficult, dtype=bool)[best[hit]]
    out[matched] = TP
    out[on_difficult | (~hit & (covered >= IGNORE_COVER))] = IGNORED
    return out, taken


@dataclass(slots=True)
class CategoryResult:
    """Metrics of one category (see the module docstring).

    Attributes:
        images: images whose dataset labels this category.
        objects: labelled objects (difficult ones excluded).
        ap50: AP at IoU 0.5, or None without labelled objects.
        precision, recall: at the operating threshold (None when undefined).
        tp, fp, fn: counts at the operating threshold.
        count_mape: mean absolute percentage count error over ``images``, percent.
    """

    category: str
    images: int = 0
    objects: int = 0
    ap50: float | None = None
    precision: float | None = None
    recall: float | None = None
    tp: int = 0
    fp: int = 0
    fn: int = 0
    count_mape: float | None = None


@dataclass(slots=True)
class Evaluation:
    """Result of :func:`evaluate`."""

    categories: dict[str, CategoryResult]
    images: int
    score_threshold: float
    iou_threshold: float
    model: str = ""
    split: str = "all"
    datasets: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    by_dataset: dict[str, dict[str, CategoryResult]] = field(default_factory=dict)
    score_thresholds: dict[str, float] = field(default_factory=dict)
    pooled: dict[str, CategoryResult] = field(default_factory=dict)
    #: ``dataset -> site group id -> category -> result`` for datasets split by site group
    #: (:data:`GROUPED_DATASETS`); a group id is the smallest image name of the group.
    by_group: dict[str, dict[str, dict[str, CategoryResult]]] = field(default_factory=dict)

    @property
    def map50(self) -> float | None:
        """Mean AP50 over categories that have labelled objects."""
        aps = [c.ap50 for c in self.categories.values() if c.ap50 is not None]
        return float(np.mean(aps)) if aps else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "split": self.split,
            "datasets": self.datasets,
            "images": self.images,
            "skipped": self.skipped,
            "score_threshold": self.score_threshold,
            "score_thresholds": self.score_thresholds,
            "iou_threshold": self.iou_threshold,
            "map50": self.map50,
            "categories": {k: asdict(v) for k, v in self.categories.items()},
            "pooled": {k: asdict(v) for k, v in self.pooled.items()},
            "by_dataset": {d: {k: asdict(v) for k, v in cats.items()} for d, cats in self.by_dataset.items()},
            "by_group": {
                d: {g: {k: asdict(v) for k, v in cats.items()} for g, cats in groups.items()}
                for d, groups in self.by_group.items()
            },
            "group_spread": self.group_spread(),
        }

    def group_spread(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per dataset evaluated by site group and per category: the mean over groups and the worst
        group of AP50 and of count MAPE.

        Returns:
            ``dataset -> category -> {"groups", "ap50_mean", "ap50_worst", "ap50_worst_group",
            "count_mape_mean", "count_mape_worst", "count_mape_worst_group"}``; AP50 is over the
            groups with labelled objects of the category, count MAPE over all groups scoring it.
        """
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for dataset, groups in self.by_group.items():
            cats = sorted(
                {c for results in groups.values() for c in results}, key=lambda c: (c not in CATEGORIES, c)
            )
            for cat in cats:
                rows = {g: results[cat] for g, results in groups.items() if cat in results}
                ap = {g: r.ap50 for g, r in rows.items() if r.ap50 is not None}
                mape = {g: r.count_mape for g, r in rows.items() if r.count_mape is not None}
                worst_ap = min(ap, key=lambda g: (ap[g], g)) if ap else None
                worst_mape = max(mape, key=lambda g: (mape[g], g)) if mape else None
                out.setdefault(dataset, {})[cat] = {
                    "groups": len(rows),
                    "ap50_mean": float(np.mean(list(ap.values()))) if ap else None,
                    "ap50_worst": ap[worst_ap] if worst_ap else None,
                    "ap50_worst_group": worst_ap,
                    "count_mape_mean": float(np.mean(list(mape.values()))) if mape else None,
                    "count_mape_worst": mape[worst_mape] if worst_mape else None,
                    "count_mape_worst_group": worst_mape,
                }
        return out


class Evaluator:
    """Accumulates per-image outcomes; :meth:`result` computes the metrics.

    Args:
        score_threshold: operating threshold for precision, recall and counts.
        iou_threshold: IoU for a match.
        score_thresholds: per-category operating thresholds; categories not listed use
            ``score_threshold``.
    """

    def __init__(
        self,
        score_threshold: float,
        iou_threshold: float = 0.5,
        score_thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.score_thresholds = {
            c: float((score_thresholds or {}).get(c, score_threshold)) for c in CATEGORIES
        }
        keys = (*CATEGORIES, *ANY_OF)
        self._scores: dict[str, list[np.ndarray]] = {c: [] for c in keys}
        self._tp: dict[str, list[np.ndarray]] = {c: [] for c in keys}
        self._thr: dict[str, list[np.ndarray]] = {c: [] for c in keys}
        self._objects = dict.fromkeys(keys, 0)
        self._images = dict.fromkeys(keys, 0)
        self._ape: dict[str, list[float]] = {c: [] for c in keys}
        self.images = 0

    def add(self, image: LabelledImage, detections: list[Detection], categories: Iterable[str]) -> None:
        """Score the detections of one image on the ``categories`` its dataset labels."""
        self.images += 1
        ignore = [o for o in image.objects if o.category == "ignore"]
        ignore_polys = shapely.polygons(np.array([o.corners for o in ignore])) if ignore else None
        categories = set(categories)
        groups: list[tuple[str, tuple[str, ...]]] = [(cat, (cat,)) for cat in CATEGORIES if cat in categories]
        groups += [(name, cats) for name, cats in ANY_OF.items() if categories.issuperset(cats)]
        for key, cats in groups:
            objs = [o for o in image.objects if o.category in cats]
            preds = [d for d in detections if d.category in cats]
            gt = shapely.polygons(np.array([o.corners for o in objs])) if objs else np.empty(0, dtype=object)
            difficult = np.array([o.difficult for o in objs], dtype=bool)
            scores = np.array([d.score for d in preds], dtype=float)
            thresholds = np.array([self.score_thresholds[d.category] for d in preds], dtype=float)
            polys = polygons([d.box for d in preds], envelope=image.axis_aligned)
            outcome, _ = match_objects(polys, scores, gt, difficult, ignore_polys, self.iou_threshold)
            counted = outcome != IGNORED
            self._scores[key].append(scores[counted])
            self._tp[key].append(outcome[counted] == TP)
            self._thr[key].append(thresholds[counted])
            n = int((~difficult).sum())
            self._objects[key] += n
            self._images[key] += 1
            m = int((counted & (scores >= thresholds)).sum())
            self._ape[key].append(100.0 * abs(m - n) / max(n, 1))

    def _score(self, name: str, cats: tuple[str, ...]) -> CategoryResult:
        scores = np.concatenate([s for c in cats for s in self._scores[c]])
        tp = np.concatenate([t for c in cats for t in self._tp[c]]).astype(bool)
        thr = np.concatenate([t for c in cats for t in self._thr[c]])
        n = sum(self._objects[c] for c in cats)
        at = scores >= thr
        ntp, nfp = int((tp & at).sum()), int((~tp & at).sum())
        apes = [a for c in cats for a in self._ape[c]]
        return CategoryResult(
            category=name,
            images=max(self._images[c] for c in cats),
            objects=n,
            ap50=average_precision(scores, tp, n),
            precision=ntp / (ntp + nfp) if ntp + nfp else None,
            recall=ntp / n if n else None,
            tp=ntp,
            fp=nfp,
            fn=n - ntp,
            count_mape=float(np.mean(apes)) if apes else None,
        )

    def result(self, **info: Any) -> Evaluation:
        out = {cat: self._score(cat, (cat,)) for cat in CATEGORIES if self._images[cat]}
        pooled = {
            name: self._score(name, cats)
            for name, cats in POOLED.items()
            if all(self._images[c] for c in cats)
        }
        pooled |= {name: self._score(name, (name,)) for name in ANY_OF if self._images[name]}
        return Evaluation(
            out,
            self.images,
            self.score_threshold,
            self.iou_threshold,
            score_thresholds=dict(self.score_thresholds),
            pooled=pooled,
            **info,
        )


# --- datasets -------------------------------------------------------------------------------


def dataset_roots(path: Path) -> list[Path]:
    """The DOTA roots at ``path``: itself if it has ``images/`` and ``labels/``, else its sub-folders that do.

    Raises:
        SceneError: no DOTA folder found.
    """
    path = Path(path)
    if not path.is_dir():
        raise SceneError(f"{path}: not a folder")
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return [path]
    roots = sorted(p for p in path.iterdir() if (p / "images").is_dir() and (p / "labels").is_dir())
    if not roots:
        raise SceneError(f"{path}: no labelled dataset found (expected images/ and labels/ folders)")
    return roots


def labelled_categories(root: Path, images: list[LabelledImage]) -> set[str]:
    """Categories a dataset labels: from ``classes.csv`` next to it, else those in its labels."""
    class_map = load_class_map(root.parent / "classes.csv")
    cats = {c for (ds, _), c in class_map.items() if ds == root.name and c in CATEGORIES}
    return cats or {o.category for im in images for o in im.objects if o.category in CATEGORIES}


def split_filter(split: str) -> tuple[Callable[[LabelledImage], bool], str | None]:
    """A filter for ``split`` ("val" or "all") and a note when the split cannot be applied."""
    if split == "all":
        return (lambda _im: True), None
    try:
        from sitewatch.detect.train.splits import split_of
    except ImportError:
        return (lambda _im: True), "the training split definition is not installed; evaluating all images"
    return (lambda im: split_of(im) == split), None


def iter_labelled(path: Path, split: str = "val") -> Iterator[tuple[LabelledImage, set[str]]]:
    """Labelled images under ``path`` (one DOTA root or a tree of them) in ``split``, with the
    categories their dataset labels."""
    keep, _ = split_filter(split)
    for root in dataset_roots(path):
        images = list(iter_dataset(root))
        cats = labelled_categories(root, images)
        for im in images:
            if keep(im):
                yield im, cats


#: Datasets whose images come in site groups (the same footprint on several dates), evaluated per
#: group too: the training split holds out whole groups, so the spread between groups shows how
#: the model does on sites it has never seen.
GROUPED_DATASETS = frozenset({"airbus-pleiades"})


def site_group_lookup() -> Callable[[LabelledImage], str | None]:
    """A function giving the site group of an image of :data:`GROUPED_DATASETS` (None for other
    datasets, or when the training split definition is not installed); groups are read once per
    dataset folder (:func:`sitewatch.detect.train.splits.site_groups`)."""
    try:
        from sitewatch.detect.train.splits import site_groups
    except ImportError:
        return lambda _im: None
    cache: dict[Path, dict[str, str]] = {}

    def group(image: LabelledImage) -> str | None:
        if image.dataset not in GROUPED_DATASETS:
            return None
        root = Path(image.image_path).parent.parent
        if root not in cache:
            cache[root] = site_groups(root)
        return cache[root].get(image.name, image.name)

    return group


def detect_labelled(
    detector: Detector,
    items: Iterable[tuple[LabelledImage, set[str]]],
    open_scene: Callable[[LabelledImage], Scene],
    skipped: list[str] | None = None,
) -> Iterator[tuple[LabelledImage, set[str], list[Detection]]]:
    """``detector``'s detections on each labelled image, with the categories its dataset labels;
    unreadable images are skipped with a warning (their paths appended to ``skipped``)."""
    for image, cats in items:
        try:
            with open_scene(image) as scene:
                dets = detector.detect(scene, gsd_m=image.gsd_m)
        except SceneError as e:
            log.warning("%s", e)
            if skipped is not None:
                skipped.append(str(image.image_path))
            continue
        yield image, cats, dets


def evaluate(
    detector: Detector,
    items: Iterable[tuple[LabelledImage, set[str]]],
    *,
    open_scene: Callable[[LabelledImage], Scene],
    score_threshold: float,
    iou_threshold: float = 0.5,
    progress: Callable[[LabelledImage], None] | None = None,
    score_thresholds: Mapping[str, float] | None = None,
) -> Evaluation:
    """Run ``detector`` on labelled images and score it.

    The detector should run at a low score threshold (AP needs the whole ranking);
    ``score_threshold`` is the operating point for precision, recall and count errors, per
    category ``score_thresholds`` where given. Unreadable images are skipped and listed in
    ``Evaluation.skipped``.
    """
    ev = Evaluator(score_threshold, iou_threshold, score_thresholds)
    per_dataset: dict[str, Evaluator] = {}
    per_group: dict[str, dict[str, Evaluator]] = {}
    group_of = site_group_lookup()
    skipped: list[str] = []
    for image, cats, dets in detect_labelled(detector, items, open_scene, skipped):
        ev.add(image, dets, cats)
        per_dataset.setdefault(
            image.dataset, Evaluator(score_threshold, iou_threshold, score_thresholds)
        ).add(image, dets, cats)
        if (group := group_of(image)) is not None:
            groups = per_group.setdefault(image.dataset, {})
            groups.setdefault(group, Evaluator(score_threshold, iou_threshold, score_thresholds)).add(
                image, dets, cats
            )
        if progress is not None:
            progress(image)
    label = getattr(detector, "label", "")
    by_dataset = {}
    for name, evaluator in sorted(per_dataset.items()):
        r = evaluator.result()
        by_dataset[name] = {**r.categories, **r.pooled}
    by_group = {
        name: {g: {**(r := e.result()).categories, **r.pooled} for g, e in sorted(groups.items())}
        for name, groups in sorted(per_group.items())
    }
    return ev.result(
        model=label, datasets=sorted(per_dataset), skipped=skipped, by_dataset=by_dataset, by_group=by_group
    )
