"""What the detector calls each labelled vehicle class, and how large the labels are.

    python bench/vehicle_classes.py ../shared/data [--model PATH] [--datasets fair1m vedai] [--split val]

For every labelled vehicle (large or small, per ``classes.csv``) of the chosen datasets and split,
prints per dataset and fine class: how many there are, the quartiles of their label length and the
median width (pixels of the image), and which category the detector gives them at its operating
thresholds (the detection of best rotated IoU, at least 0.5; "missed" otherwise). It shows whether
a "large vehicle" shortfall is a detector that finds the objects but sizes them small, or fine
classes whose labels are not larger than the small ones.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict

import numpy as np
import shapely

from _data import data_tree
from sitewatch.cli.detect import open_image
from sitewatch.detect.evaluate import iter_labelled
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.geometry import polygons

VEHICLES = ("large-vehicle", "small-vehicle")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=data_tree)
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--datasets", nargs="+", default=["fair1m", "vedai"])
    ap.add_argument("--split", default="val", choices=["val", "train"])
    args = ap.parse_args(argv)

    det = OnnxDetector(args.model)
    thresholds = det.score_thresholds
    det.score_threshold = min(thresholds.values())
    called: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    sizes: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    items = [(im, c) for im, c in iter_labelled(args.data, args.split) if im.dataset in args.datasets]
    for n, (image, _) in enumerate(items, 1):
        objects = [o for o in image.objects if o.category in VEHICLES]
        if not objects:
            continue
        with open_image(str(image.image_path), image.gsd_m) as scene:
            dets = [
                d
                for d in det.detect(scene, gsd_m=image.gsd_m)
                if d.score >= thresholds.get(d.category, det.info.score_threshold)
            ]
        det_polys = polygons([d.box for d in dets])
        for o, lab in zip(objects, polygons([o.box for o in objects]), strict=True):
            key = (image.dataset, o.category, o.fine_class)
            sizes[key].append((o.box.length, o.box.width))
            if not dets:
                called[key]["missed"] += 1
                continue
            iou = shapely.area(shapely.intersection(lab, det_polys)) / np.maximum(
                shapely.area(shapely.union(lab, det_polys)), 1e-9
            )
            best = int(np.argmax(iou))
            called[key][dets[best].category if iou[best] >= 0.5 else "missed"] += 1
        print(f"\r{n}/{len(items)} images", end="", file=sys.stderr)
    print(file=sys.stderr)

    print(f"{det.label}, split {args.split}, operating thresholds {thresholds}\n")
    print(
        "| dataset | category | fine class | labels | length px (25/50/75 %) | width px (50 %) | detected as |"
    )
    print("|---|---|---|---|---|---|---|")
    for key in sorted(sizes):
        s = np.array(sizes[key])
        q = np.percentile(s[:, 0], [25, 50, 75])
        as_ = ", ".join(f"{c} {k}" for c, k in called[key].most_common())
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {len(s)} | {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} | "
            f"{np.median(s[:, 1]):.1f} | {as_} |"
        )


if __name__ == "__main__":
    main()
