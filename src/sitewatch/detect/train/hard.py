"""Hard regions: places where a model goes wrong on its own training images, sampled more often.

A hard-region file (written by :func:`sitewatch.detect.train.mine.write_regions`, ``sitewatch train
mine``) holds two kinds of places per training image: **false** (a detection at its category's
operating threshold that matches no labelled object) and **missed** (a labelled, non-difficult object
no detection matches). Each is a point in the original image's pixels with its kind, category and
score, so a file mined with one model serves any later run.
:class:`~sitewatch.detect.train.data.CropSampler` centres
:data:`~sitewatch.detect.train.data.HARD_SHARE` of its crops on them (``sitewatch train --hard
FILE``): the false ones come back as ground, the missed ones as objects.

This module is the trainer's side (it travels in the training pack); mining is in
:mod:`sitewatch.detect.train.mine`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from sitewatch.errors import SitewatchError

KINDS = ("false", "missed")


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
