"""Compare stage on the real Pléiades pairs: registration vs pairs.csv, object change vs labels.

Usage: python bench/compare_pairs.py [DATA_DIR] [--detector]

* Registration: estimated shift (half-resolution images) vs pairs.csv; and whether it aligns the
  gradient images at least as well as the listed shift (normalised cross-correlation).
* Object change with the LABELS as detections vs the label-derived reference
  (:mod:`sitewatch.compare.evaluation`): per-object status agreement.
* ``--detector``: the bundled detector's arrived/departed aircraft vs the same reference
  (precision/recall; an arrival counts as correct when a reference arrival lies within 20 px).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from sitewatch.compare import CompareSettings, Registration, match_detections, register
from sitewatch.compare.evaluation import agreement, reference_changes, statuses
from sitewatch.compare.registration import gradient_image
from sitewatch.dota import parse_label_file
from sitewatch.types import Detection


def ncc(ga: np.ndarray, gb: np.ndarray, dx: float, dy: float) -> float:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = ga.shape
    wb = cv2.warpAffine(gb, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inside = cv2.warpAffine(np.ones_like(ga), m, (w, h), flags=cv2.WARP_INVERSE_MAP) > 0.5
    x, y = ga[inside] - ga[inside].mean(), wb[inside] - wb[inside].mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def labels(root: Path, name: str) -> list[Detection]:
    img = parse_label_file(root / "labels" / (Path(name).stem + ".txt"), root / "images" / name, "airbus-pleiades")
    return [Detection(o.box, "aircraft", 1.0) for o in img.objects if not o.difficult]


def main(data: Path, with_detector: bool) -> None:
    root = data / "airbus-pleiades"
    rows = list(csv.DictReader((root / "pairs.csv").open(newline="")))
    errs, better, methods = [], 0, {}
    same = total = 0
    ref_totals = {"remained": 0, "departed": 0, "arrived": 0}
    found_totals = {"remained": 0, "departed": 0, "arrived": 0, "moved": 0}
    det_tp = {"arrived": 0, "departed": 0}
    det_n = {"arrived": 0, "departed": 0}
    ref_n = {"arrived": 0, "departed": 0}
    detector = None
    if with_detector:
        from sitewatch.detect import load_detector
        from sitewatch.imagery import open_scene

        detector = load_detector()
    t0 = time.time()
    for r in rows:
        a = cv2.imread(str(root / r["subdir_a"] / r["image_a"]), cv2.IMREAD_REDUCED_GRAYSCALE_2).astype(np.float32)
        b = cv2.imread(str(root / r["subdir_b"] / r["image_b"]), cv2.IMREAD_REDUCED_GRAYSCALE_2).astype(np.float32)
        reg = register(a, b)
        methods[reg.method] = methods.get(reg.method, 0) + 1
        sx, sy = float(r["shift_x_px_fullres"]), float(r["shift_y_px_fullres"])
        errs.append(np.hypot(2 * reg.shift_x_px - sx, 2 * reg.shift_y_px - sy))
        ga, gb = gradient_image(a), gradient_image(b)
        better += ncc(ga, gb, reg.shift_x_px, reg.shift_y_px) >= ncc(ga, gb, sx / 2, sy / 2) - 0.01
        if r["subdir_a"] != "images" or r["subdir_b"] != "images":
            continue
        full = Registration.translation(2 * reg.shift_x_px, 2 * reg.shift_y_px, quality=reg.quality, method=reg.method, error_px=2 * reg.error_px)
        da, db = labels(root, r["image_a"]), labels(root, r["image_b"])
        ref = reference_changes([d.box for d in da], [d.box for d in db], sx, sy)
        changes = match_detections(da, db, full, gsd_m=0.5)
        s, t = agreement(statuses(changes, len(da), len(db), da, db), ref)
        same, total = same + s, total + t
        for k, v in ref.counts().items():
            ref_totals[k] += v
        for c in changes:
            found_totals[c.status] = found_totals.get(c.status, 0) + 1
        if detector is not None:
            dets = {}
            for key, name in (("a", r["image_a"]), ("b", r["image_b"])):
                with open_scene(root / "images" / name, gsd_m=0.5) as scene:
                    dets[key] = [d for d in detector.detect(scene, gsd_m=0.5) if d.category == "aircraft"]
            dch = match_detections(dets["a"], dets["b"], full, gsd_m=0.5, settings=CompareSettings())
            ref_pts = {
                "departed": [da[i].box for i, st in enumerate(ref.a) if st == "departed"],
                "arrived": [db[j].box for j, st in enumerate(ref.b) if st == "arrived"],
            }
            for status, key in (("departed", "det_a"), ("arrived", "det_b")):
                ref_n[status] += len(ref_pts[status])
                got = [getattr(c, key).box for c in dch if c.status in (status, "moved")]
                det_n[status] += len(got)
                det_tp[status] += sum(any(np.hypot(g.cx - p.cx, g.cy - p.cy) <= 20 for p in ref_pts[status]) for g in got)
    errs = np.array(errs)
    print(f"pairs: {len(rows)}  ({time.time() - t0:.0f} s)")
    print(f"registration vs pairs.csv: median {np.median(errs):.2f} px, <=2 px {np.mean(errs <= 2):.1%}, <=5 px {np.mean(errs <= 5):.1%}")
    print(f"aligns gradients at least as well as pairs.csv: {better}/{len(rows)}; methods {methods}")
    print(f"labels as detections: status agreement {same}/{total} = {same / total:.1%}")
    print(f"  reference {ref_totals}; found {found_totals}")
    if detector is not None:
        for k in ("arrived", "departed"):
            p = det_tp[k] / det_n[k] if det_n[k] else float("nan")
            rc = det_tp[k] / ref_n[k] if ref_n[k] else float("nan")
            print(f"detector {k}: precision {p:.2f} ({det_tp[k]}/{det_n[k]}), recall-ish {rc:.2f} (vs {ref_n[k]} reference)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(Path(args[0]) if args else Path(__file__).resolve().parents[2] / "shared" / "data", "--detector" in sys.argv)
