"""Real image pairs of airbus-pleiades/pairs.csv: a fixed seeded subset and a reference shift independent of it.

pairs.csv lists each pair's shift as measured on 1024 px copies, so its values are quantised to
2.5 px at full resolution and off by more than 2 px on many pairs (docs/compare.md). The reference
here is a SIFT estimate (matches kept by translation consensus, as ``bench/compare_pairs.py --sift``),
a method independent of both pairs.csv and the phase correlation under test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

PAIRS = "airbus-pleiades/pairs.csv"
#: Seed of the fixed subsets of pairs.csv rows.
PAIRS_SEED = 19
_REDUCED = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4}


def pair_rows(data_dir: Path) -> list[dict[str, str]]:
    """All rows of pairs.csv, in file order."""
    with (data_dir / PAIRS).open(newline="") as f:
        return list(csv.DictReader(f))


def seeded_subset(rows: list[dict[str, str]], n: int, seed: int = PAIRS_SEED) -> list[dict[str, str]]:
    """``n`` rows drawn at random with a fixed seed (file order kept), not picked by their results."""
    pick = np.random.default_rng(seed).choice(len(rows), n, replace=False)
    return [rows[i] for i in sorted(pick)]


def read_grey(data_dir: Path, sub: str, name: str, reduce: int) -> np.ndarray:
    """A pair image as uint8 grey, read at 1/``reduce`` resolution."""
    return cv2.imread(str(data_dir / "airbus-pleiades" / sub / name), _REDUCED[reduce])


def sift_shift(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """A→B shift (x, y) in the images' pixels and the number of consistent SIFT matches.

    The median displacement of ratio-tested SIFT matches, refined on matches within 3 px of it.
    """
    sift = cv2.SIFT_create(nfeatures=4000)
    (ka, da), (kb, db) = sift.detectAndCompute(a, None), sift.detectAndCompute(b, None)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    d = np.float32([kb[m.trainIdx].pt for m in good]) - np.float32([ka[m.queryIdx].pt for m in good])
    med = np.median(d, axis=0)
    for _ in range(5):
        near = np.hypot(*(d - med).T) < 3.0
        med = np.median(d[near], axis=0)
    return med, int(near.sum())
