"""Hard regions: where a model goes wrong on its own training images, sampled more often.

:func:`mine` runs a detector over the training split and keeps two kinds of places per image:

* **false**: a detection at or above its category's operating threshold that matches no labelled
  object of its category (the VOC rule of :func:`sitewatch.detect.evaluate.match`: detections on
  difficult objects or lying mostly on "ignore" objects are not false) — a runway marking or a car
  park called an aircraft, a shade canopy called a helicopter;
* **missed**: a labelled, non-difficult object that no detection at the operating threshold
  matches — an aircraft wing to wing with its neighbours, a small ship beside a pier.

Only the categories a dataset labels are judged on its images. Each place is stored as a point in
the original image's pixels with its kind, category and score (:func:`write_regions`, JSON), so a
file mined with one model serves any later run. :class:`~sitewatch.detect.train.data.CropSampler`
centres :data:`~sitewatch.detect.train.data.HARD_SHARE` of its crops on them (``sitewatch train
--hard FILE``): the false ones come back as ground, the missed ones as objects.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely

from sitewatch.detect.base import Detector
from sitewatch.detect.evaluate import FP, detect_labelled, match
from sitewatch.dota import LabelledImage
from sitewatch.errors import SitewatchError
from sitewatch.geometry import match_greedy, polygon_iou, polygons
from sitewatch.imagery.base import Scene
from sitewatch.types import Detection

log = logging.getLogger(__name__)

KINDS = ("false", "missed")
#: At most this many places of each kind are kept per image (the highest-scoring false ones; the
#: missed ones in label order), so one crowded image does not take the whole share.
MAX_PER_IMAGE = 25


@dataclass(frozen=True, slots=True)
class HardRegion:
    """One place where the model was wrong: ``x``, ``y`` in the original image's pixels; ``score``
    is the false detection's score (0 for a missed object)."""

    dataset: str
    image: str
    x: float
    y: float
    kind: str
    category: str
    score: float


def hard_regions(
    image: LabelledImage,
    detections: list[Detection],
    categories: Iterable[str],
    thresholds: Mapping[str, float],
    iou_threshold: float = 0.5,
) -> list[HardRegion]:
    """The false detections and missed objects of one image (see the module docstring).

    Args:
        image: the labelled image.
        detections: the model's detections on it (any score; those below ``thresholds`` are not used).
        categories: the categories its dataset labels.
        thresholds: operating score threshold per category.
        iou_threshold: least IoU of a match.
    """
    ignore = [o for o in image.objects if o.category == "ignore"]
    ignore_polys = shapely.polygons(np.array([o.corners for o in ignore])) if ignore else None
    out: list[HardRegion] = []
    for cat in sorted(categories):
        objs = [o for o in image.objects if o.category == cat]
        preds = [d for d in detections if d.category == cat and d.score >= thresholds[cat]]
        gt = shapely.polygons(np.array([o.corners for o in objs])) if objs else np.empty(0, dtype=object)
        difficult = np.array([o.difficult for o in objs], dtype=bool)
        scores = np.array([d.score for d in preds], dtype=float)
        polys = polygons([d.box for d in preds], envelope=image.axis_aligned)
        outcome = match(polys, scores, gt, difficult, ignore_polys, iou_threshold)
        false = sorted((k for k in range(len(preds)) if outcome[k] == FP), key=lambda k: -scores[k])
        for k in false[:MAX_PER_IMAGE]:
            box = preds[k].box
            out.append(HardRegion(image.dataset, image.name, box.cx, box.cy, "false", cat, float(scores[k])))
        found = np.zeros(len(objs), dtype=bool)
        if len(preds) and len(objs):
            best, matched = match_greedy(polygon_iou(polys, gt), scores, iou_threshold)
            found[best[matched]] = True
        missed = [i for i, o in enumerate(objs) if not found[i] and not o.difficult]
        for i in missed[:MAX_PER_IMAGE]:
            box = objs[i].box
            out.append(HardRegion(image.dataset, image.name, box.cx, box.cy, "missed", cat, 0.0))
    return out


def mine(
    detector: Detector,
    items: Iterable[tuple[LabelledImage, set[str]]],
    *,
    open_scene: Callable[[LabelledImage], Scene],
    thresholds: Mapping[str, float],
    progress: Callable[[LabelledImage], None] | None = None,
) -> list[HardRegion]:
    """Run ``detector`` on labelled images and collect their hard regions; unreadable images are
    skipped with a warning."""
    out: list[HardRegion] = []
    for image, cats, dets in detect_labelled(detector, items, open_scene):
        out.extend(hard_regions(image, dets, cats, thresholds))
        if progress is not None:
            progress(image)
    return out


def write_regions(path: Path, regions: list[HardRegion], model: str, *, overwrite: bool = False) -> None:
    """Write regions as JSON (``{"model", "counts", "regions": [...]}``), atomically
    (:func:`sitewatch.output.atomic_output`: an existing file is refused unless ``overwrite``)."""
    from sitewatch.output import atomic_output

    counts: dict[str, dict[str, int]] = {}
    for r in regions:
        per = counts.setdefault(r.dataset, {})
        key = f"{r.kind} {r.category}"
        per[key] = per.get(key, 0) + 1
    doc = {"model": model, "counts": counts, "regions": [asdict(r) for r in regions]}
    with atomic_output(path, overwrite=overwrite, what="hard-region file") as tmp:
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def read_regions(path: Path) -> list[HardRegion]:
    """Regions written by :func:`write_regions`.

    Raises:
        SitewatchError: naming the file when it is not a hard-region file.
    """
    what = f"{path}: not a hard-region file of `sitewatch train mine`"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SitewatchError(f"{what} ({e})") from None
    rows = doc.get("regions") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise SitewatchError(f"{what} (no list of regions)")
    out = []
    for i, r in enumerate(rows):
        try:
            region = HardRegion(
                str(r["dataset"]),
                str(r["image"]),
                float(r["x"]),
                float(r["y"]),
                str(r["kind"]),
                str(r["category"]),
                float(r["score"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SitewatchError(f"{what} (region {i + 1}: {e!r})") from None
        if region.kind in KINDS and math.isfinite(region.x) and math.isfinite(region.y):
            out.append(region)
    return out
