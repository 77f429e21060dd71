"""Compare stage on the real Pléiades pairs: registration vs pairs.csv, object change vs labels.

Usage: python bench/compare_pairs.py [DATA_DIR] [--detector [MODEL]] [--cache DIR] [--limit N]

* Registration: estimated shift (half-resolution images) vs pairs.csv; whether it aligns the
  gradient images at least as well as the listed shift (normalised cross-correlation); whether the
  listed shifts are whole pixels of 1024 px copies (2.5 px steps); the measured local
  misregistration (spread of block residuals, :func:`sitewatch.compare.registration.local_residuals`);
  with ``--sift``, an independent full-resolution estimate (SIFT matches, translation consensus) to
  compare both against.
* Object change with the LABELS as detections vs the label-derived reference
  (:mod:`sitewatch.compare.evaluation`): per-object status agreement.
* ``--detector [MODEL]``: the detector's (default: the bundled ``sitewatch-det`` or
  ``$SITEWATCH_MODEL``) aircraft on both images, matched with the estimated registration, vs the
  same reference: precision/recall of arrived, departed and remained aircraft. "moved" counts as
  departed + arrived (the reference has no "moved"); "unobserved" is left out. A found object is
  correct when a reference object of the same status lies within ``RADIUS_PX`` of its centre
  (one-to-one, :func:`sitewatch.compare.evaluation.point_match`). ``--cache DIR`` keeps the
  detections per image (keyed by the model's content id).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import cv2
import numpy as np

from sitewatch.compare import CompareSettings, Registration, match_detections, register
from sitewatch.compare.evaluation import PointMatch, agreement, point_match, reference_changes, statuses
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


def sift_translation(a_path: Path, b_path: Path) -> np.ndarray:
    """Full-resolution A→B shift: median displacement of SIFT matches consistent within 3 px."""
    sift = cv2.SIFT_create(nfeatures=8000)
    a, b = cv2.imread(str(a_path), cv2.IMREAD_GRAYSCALE), cv2.imread(str(b_path), cv2.IMREAD_GRAYSCALE)
    (ka, da), (kb, db) = sift.detectAndCompute(a, None), sift.detectAndCompute(b, None)
    good = [
        p[0]
        for p in cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
        if len(p) == 2 and p[0].distance < 0.75 * p[1].distance
    ]
    d = np.float32([kb[m.trainIdx].pt for m in good]) - np.float32([ka[m.queryIdx].pt for m in good])
    med = np.median(d, axis=0)
    for _ in range(5):
        med = np.median(d[np.hypot(*(d - med).T) < 3.0], axis=0)
    return med


def labels(root: Path, name: str) -> list[Detection]:
    img = parse_label_file(
        root / "labels" / (Path(name).stem + ".txt"), root / "images" / name, "airbus-pleiades"
    )
    return [Detection(o.box, "aircraft", 1.0) for o in img.objects if not o.difficult]


RADIUS_PX = 20.0  # 10 m at 0.5 m: a quarter of a large aircraft's length


def main(
    data: Path, model: str | None, cache: Path | None = None, limit: int | None = None, sift: bool = False
) -> None:
    root = data / "airbus-pleiades"
    rows = list(csv.DictReader((root / "pairs.csv").open(newline="")))[:limit]
    listed = np.array([[float(r["shift_x_px_fullres"]), float(r["shift_y_px_fullres"])] for r in rows])
    steps = np.round(listed / 2.5)
    on_grid = np.all(np.abs(listed - steps * 2.5) <= 0.5, axis=1)
    print(f"pairs.csv shifts that are whole 2.5 px steps (rounded): {on_grid.sum()}/{len(rows)}")
    errs, better, methods, spreads, sift_ours, sift_listed = [], 0, {}, [], [], []
    same = total = 0
    ref_totals = {"remained": 0, "departed": 0, "arrived": 0}
    found_totals = {"remained": 0, "departed": 0, "arrived": 0, "moved": 0}
    det_pr = {k: PointMatch(0, 0, 0, 0) for k in ("arrived", "departed", "remained")}
    det_counts: dict[str, int] = {}
    detector = tag = None
    if model is not None:
        from sitewatch.detect.onnx import OnnxDetector
        from sitewatch.identify.evaluate import detect_cached, model_id

        detector = OnnxDetector(model or None)
        tag = model_id(detector.backend.info.path)
        print(
            f"detector {detector.name} {detector.version} ({detector.backend.info.path}, sha256 {tag}), score threshold {detector.score_threshold}"
        )
    t0 = time.time()
    for r in rows:
        a = cv2.imread(str(root / r["subdir_a"] / r["image_a"]), cv2.IMREAD_REDUCED_GRAYSCALE_2).astype(
            np.float32
        )
        b = cv2.imread(str(root / r["subdir_b"] / r["image_b"]), cv2.IMREAD_REDUCED_GRAYSCALE_2).astype(
            np.float32
        )
        reg = register(a, b)
        methods[reg.method] = methods.get(reg.method, 0) + 1
        sx, sy = float(r["shift_x_px_fullres"]), float(r["shift_y_px_fullres"])
        errs.append(np.hypot(2 * reg.shift_x_px - sx, 2 * reg.shift_y_px - sy))
        if reg.local_spread_px is not None:
            spreads.append(2 * reg.local_spread_px)
        if sift:
            st = sift_translation(root / r["subdir_a"] / r["image_a"], root / r["subdir_b"] / r["image_b"])
            sift_ours.append(np.hypot(*(st - [2 * reg.shift_x_px, 2 * reg.shift_y_px])))
            sift_listed.append(np.hypot(*(st - [sx, sy])))
        ga, gb = gradient_image(a), gradient_image(b)
        better += ncc(ga, gb, reg.shift_x_px, reg.shift_y_px) >= ncc(ga, gb, sx / 2, sy / 2) - 0.01
        if r["subdir_a"] != "images" or r["subdir_b"] != "images":
            continue
        full = Registration.translation(
            2 * reg.shift_x_px,
            2 * reg.shift_y_px,
            quality=reg.quality,
            method=reg.method,
            error_px=2 * reg.error_px,
        )
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
            dets = {
                key: [
                    d
                    for d in detect_cached(detector, root / "images" / name, 0.5, cache, tag)
                    if d.category == "aircraft"
                ]
                for key, name in (("a", r["image_a"]), ("b", r["image_b"]))
            }
            dch = match_detections(dets["a"], dets["b"], full, gsd_m=0.5, settings=CompareSettings())
            for c in dch:
                det_counts[c.status] = det_counts.get(c.status, 0) + 1
            ref_boxes = {
                "departed": [da[i].box for i, st in enumerate(ref.a) if st == "departed"],
                "arrived": [db[j].box for j, st in enumerate(ref.b) if st == "arrived"],
                "remained": [da[i].box for i, st in enumerate(ref.a) if st == "remained"],
            }
            found = {
                "departed": [c.det_a.box for c in dch if c.status in ("departed", "moved")],
                "arrived": [c.det_b.box for c in dch if c.status in ("arrived", "moved")],
                "remained": [c.det_a.box for c in dch if c.status == "remained"],
            }
            for k in det_pr:
                det_pr[k] = det_pr[k] + point_match(found[k], ref_boxes[k], RADIUS_PX)
    errs = np.array(errs)
    print(f"pairs: {len(rows)}  ({time.time() - t0:.0f} s)")
    print(
        f"registration vs pairs.csv: median {np.median(errs):.2f} px, <=2 px {np.mean(errs <= 2):.1%}, <=5 px {np.mean(errs <= 5):.1%}"
    )
    print(f"aligns gradients at least as well as pairs.csv: {better}/{len(rows)}; methods {methods}")
    sp = np.array(spreads)
    print(
        f"local misregistration (1-sigma spread of residuals of {CompareSettings().local_block_px} px blocks at half resolution, in full-res px) over {len(sp)} pairs: "
        f"median {np.median(sp):.2f}, > 1 px on {np.mean(sp > 1):.0%}, > 2 px on {np.mean(sp > 2):.0%}"
    )
    for name, e in (("ours", sift_ours), ("pairs.csv", sift_listed)):
        if e:
            e = np.array(e)
            print(
                f"independent full-res SIFT shift vs {name}: median {np.median(e):.2f} px, <=2 px {np.mean(e <= 2):.1%}"
            )
    print(f"labels as detections: status agreement {same}/{total} = {same / total:.1%}")
    print(f"  reference {ref_totals}; found {found_totals}")
    if detector is not None:
        print(f"detector changes (aircraft): {det_counts}")
        for k, m in det_pr.items():
            print(
                f"detector {k}: precision {m.precision:.2f} ({m.found_hit}/{m.found}), recall {m.recall:.2f} ({m.ref_hit}/{m.ref})"
            )


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "data_dir", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument(
        "--detector",
        nargs="?",
        const="",
        default=None,
        metavar="MODEL",
        help="also run the detector (default model: bundled)",
    )
    ap.add_argument("--cache", type=Path, help="folder to cache detections in")
    ap.add_argument("--limit", type=int, help="only the first N pairs")
    ap.add_argument(
        "--sift", action="store_true", help="also estimate each shift by full-resolution SIFT matching"
    )
    a = ap.parse_args()
    main(a.data_dir, a.detector, a.cache, a.limit, a.sift)
