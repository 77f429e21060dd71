"""Mining hard regions: run a model over its training images and keep where it goes wrong.

:func:`mine` keeps two kinds of places per image (:class:`~sitewatch.detect.train.hard.HardRegion`):

* **false**: a detection at or above its category's operating threshold (or a fraction of it, the
  ``margin``: near misses a little more training would turn into false alarms) that matches no
  labelled object of its category (the VOC rule of :func:`sitewatch.detect.evaluate.match_objects`:
  detections on objects trained as zero-loss regions or lying mostly on "ignore" objects are not
  false) — a runway marking or a car park called an aircraft, a shade canopy called a helicopter;
* **missed**: a labelled object trained as a target (not difficult, not a vehicle without a size
  class: :func:`~sitewatch.detect.train.data.zero_loss`) that no detection at the operating threshold
  matches — an aircraft wing to wing with its neighbours, a small ship beside a pier.

Only the categories a dataset labels are judged on its images. :func:`write_regions` stores them as
JSON for ``sitewatch train --hard``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import shapely

from sitewatch.detect.base import Detector
from sitewatch.detect.evaluate import FP, detect_labelled, match_objects
from sitewatch.detect.train.data import zero_loss
from sitewatch.detect.train.hard import HardRegion
from sitewatch.dota import LabelledImage
from sitewatch.geometry import polygons
from sitewatch.imagery.base import Scene
from sitewatch.output import atomic_output
from sitewatch.types import Detection

#: At most this many places of each kind are kept per image (the highest-scoring false ones; the
#: missed ones in label order), so one crowded image does not take the whole share.
MAX_PER_IMAGE = 25


def hard_regions(
    image: LabelledImage,
    detections: list[Detection],
    categories: Iterable[str],
    thresholds: Mapping[str, float],
    iou_threshold: float = 0.5,
    margin: float = 1.0,
) -> list[HardRegion]:
    """The false detections and missed objects of one image (see the module docstring).

    Args:
        image: the labelled image.
        detections: the model's detections on it (any score; those below ``thresholds`` are not used).
        categories: the categories its dataset labels.
        thresholds: operating score threshold per category.
        iou_threshold: least IoU of a match.
        margin: false detections are looked for from ``margin`` x the operating threshold (0 < margin
            <= 1); missed objects are judged at the threshold itself.
    """
    ignore = [o for o in image.objects if o.category == "ignore"]
    ignore_polys = shapely.polygons(np.array([o.corners for o in ignore])) if ignore else None
    out: list[HardRegion] = []
    for cat in sorted(categories):
        objs = [o for o in image.objects if o.category == cat]
        gt = shapely.polygons(np.array([o.corners for o in objs])) if objs else np.empty(0, dtype=object)
        difficult = np.array([zero_loss(image.dataset, o) for o in objs], dtype=bool)

        # Missed objects at the threshold; false detections from margin x the threshold.
        floors = [thresholds[cat]] + ([margin * thresholds[cat]] if margin < 1.0 else [])
        for judged, floor in enumerate(floors):
            preds = [d for d in detections if d.category == cat and d.score >= floor]
            scores = np.array([d.score for d in preds], dtype=float)
            polys = polygons([d.box for d in preds], envelope=image.axis_aligned)
            outcome, taken = match_objects(polys, scores, gt, difficult, ignore_polys, iou_threshold)
            if judged == 0:
                found = taken
        false = sorted((k for k in range(len(preds)) if outcome[k] == FP), key=lambda k: -scores[k])
        for k in false[:MAX_PER_IMAGE]:
            box = preds[k].box
            out.append(HardRegion(image.dataset, image.name, box.cx, box.cy, "false", cat, float(scores[k])))
        missed = [i for i, o in enumerate(objs) if not found[i] and not difficult[i]]
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
    margin: float = 1.0,
    progress: Callable[[LabelledImage], None] | None = None,
) -> list[HardRegion]:
    """Run ``detector`` on labelled images and collect their hard regions (:func:`hard_regions`,
    with ``margin``); unreadable images are skipped with a warning."""
    out: list[HardRegion] = []
    for image, cats, dets in detect_labelled(detector, items, open_scene):
        out.extend(hard_regions(image, dets, cats, thresholds, margin=margin))
        if progress is not None:
            progress(image)
    return out


def write_regions(path: Path, regions: list[HardRegion], model: str, *, overwrite: bool = False) -> None:
    """Write regions as JSON (``{"model", "counts", "regions": [...]}``), atomically
    (:func:`sitewatch.output.atomic_output`: an existing file is refused unless ``overwrite``)."""
    counts: dict[str, dict[str, int]] = {}
    for r in regions:
        per = counts.setdefault(r.dataset, {})
        key = f"{r.kind} {r.category}"
        per[key] = per.get(key, 0) + 1
    doc = {"model": model, "counts": counts, "regions": [asdict(r) for r in regions]}
    with atomic_output(path, overwrite=overwrite, what="hard-region file") as tmp:
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
