"""Deterministic train / validation splits of the labelled data tree.

Rules (the same function serves training and evaluation):

* ``airbus-pleiades``: by site group. Images linked in ``airbus-pleiades/pairs.csv`` (same
  footprint, different dates) are joined into groups (connected components; an image in no pair
  is its own group). Groups are ordered by the SHA-1 of their smallest member name and taken
  for validation until at least 20 % of the dataset's labelled images are held out, so no
  site is on both sides.
* Datasets with fewer than 5 labelled images (``ucas-aod``, ``mar20-sample``,
  ``hrsc2016-samples``) are all training data.
* ``dota/P0168`` (the only DOTA image with helicopters) is always training data.
* ``simd-helicopters``: one apron group is validation (the overlapping crops 0247, 0248 and
  0249 of one apron, 5 helicopter labels); the other images are training data.
* Every other image: validation when ``sha1("<dataset>/<image stem>")`` as a fraction of
  2**160 is below the dataset's rate: 20 % for ``ships-google-earth``, ``fair1m`` and
  ``vedai``, 15 % otherwise.
"""

from __future__ import annotations

import csv
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from sitewatch.dota import IMAGE_SUFFIXES, LabelledImage

Split = Literal["train", "val"]

AIRBUS = "airbus-pleiades"
AIRBUS_VAL_FRACTION = 0.20
VAL_RATE = {"ships-google-earth": 0.20, "fair1m": 0.20, "vedai": 0.20}
DEFAULT_VAL_RATE = 0.15
MIN_IMAGES_FOR_VAL = 5
ALWAYS_TRAIN = frozenset({("dota", "P0168")})
SIMD = "simd-helicopters"
SIMD_VAL = frozenset({"simd_0247", "simd_0248", "simd_0249"})


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) from a string (SHA-1)."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) / float(1 << 160)


def _labelled_stems(root: Path) -> list[str]:
    images = {p.stem for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return sorted(p.stem for p in (root / "labels").glob("*.txt") if p.stem in images)


def site_groups(root: Path) -> dict[str, str]:
    """``image stem -> group id`` (smallest stem in the group) for ``airbus-pleiades``.

    Args:
        root: the ``airbus-pleiades`` folder (with ``images/``, ``labels/`` and ``pairs.csv``).
    """
    stems = _labelled_stems(root)
    parent: dict[str, str] = {s: s for s in stems}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pairs = root / "pairs.csv"
    if pairs.exists():
        with pairs.open(newline="") as f:
            for row in csv.DictReader(f):
                a, b = Path(row["image_a"]).stem, Path(row["image_b"]).stem
                for s in (a, b):
                    parent.setdefault(s, s)
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in parent}


@lru_cache(maxsize=8)
def _airbus_val_groups(root: str) -> frozenset[str]:
    groups = site_groups(Path(root))
    labelled = set(_labelled_stems(Path(root)))
    members: dict[str, int] = {}
    for stem, g in groups.items():
        if stem in labelled:
            members[g] = members.get(g, 0) + 1
    order = sorted(members, key=lambda g: hash_fraction(f"{AIRBUS}/{g}"))
    chosen: set[str] = set()
    held = 0
    for g in order:
        if held >= AIRBUS_VAL_FRACTION * len(labelled):
            break
        chosen.add(g)
        held += members[g]
    return frozenset(chosen)


@lru_cache(maxsize=64)
def _dataset_size(root: str) -> int:
    return len(_labelled_stems(Path(root)))


def split_of(image: LabelledImage) -> Split:
    """``"train"`` or ``"val"`` for a labelled image of the data tree (see the module rules)."""
    root = image.image_path.parent.parent
    name = image.name
    if (image.dataset, name) in ALWAYS_TRAIN:
        return "train"
    if _dataset_size(str(root)) < MIN_IMAGES_FOR_VAL:
        return "train"
    if image.dataset == SIMD:
        return "val" if name in SIMD_VAL else "train"
    if image.dataset == AIRBUS:
        group = site_groups(root).get(name, name)
        return "val" if group in _airbus_val_groups(str(root)) else "train"
    rate = VAL_RATE.get(image.dataset, DEFAULT_VAL_RATE)
    return "val" if hash_fraction(f"{image.dataset}/{name}") < rate else "train"
