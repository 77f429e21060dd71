"""Held-out detector figures the evaluation table does not show: duplicates, false helicopters, spread.

    python bench/detect_validation.py ../shared/data [--model PATH] [--no-shared-centre] [--auto-scale [--upscale-consensus]]
        [--datasets NAME ...] [--json OUT]

Runs the detector (at the AP floor, like ``sitewatch evaluate``) over the validation split of every
labelled dataset under the data tree, once, and prints:

* per dataset and category: AP50, precision, recall and count error at the model's thresholds
  (the same :class:`~sitewatch.detect.evaluate.Evaluator` as ``sitewatch evaluate``);
* per held-out airbus-pleiades site group: aircraft AP50 and count error, and the worst group;
* **cross-category duplicates**: detections (at the operating thresholds) of two categories that
  both belong to one labelled object (centre inside it, area within a factor 3 of its label's) —
  one object counted twice; detections of other sizes centred on an object (a "vehicle" on a
  ship's deck) are listed apart;
* **false helicopters per 100 km²** of airbus-pleiades validation imagery: helicopter detections
  (at the operating threshold) whose centre lies inside no labelled object;
* the wall time.

``--no-shared-centre`` turns the shared-centre cross-category rule of the merge off (the rule
before it existed), to measure what it changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import shapely

from _data import data_tree
from sitewatch.cli.detect import open_image
from sitewatch.detect.evaluate import Evaluator, iter_labelled
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.detect.train.splits import AIRBUS, site_groups
from sitewatch.geometry import polygons

AP_FLOOR = 0.05


def _inside_any(points: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """Per point, the index of one polygon holding it, or -1."""
    out = np.full(len(points), -1)
    if len(points) == 0 or len(polys) == 0:
        return out
    tree = shapely.STRtree(polys)
    pi, oi = tree.query(shapely.points(points), predicate="within")
    out[pi] = oi
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=data_tree)
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--no-shared-centre", action="store_true", help="merge without the shared-centre rule")
    ap.add_argument(
        "--extra-scale", type=float, action="append", default=[], help="extra inference scale (repeatable)"
    )
    ap.add_argument(
        "--auto-scale", action="store_true", help="automatic 2x pass on small images of unknown/coarse GSD"
    )
    ap.add_argument(
        "--flip-test", action="store_true", help="average each tile's heatmap with its mirrored tile's"
    )
    ap.add_argument(
        "--upscale-consensus",
        action="store_true",
        help="average an upsampled pass's heatmap with the same tiles' at native resolution",
    )
    ap.add_argument("--datasets", nargs="+", default=None, help="only these datasets")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    ap.add_argument(
        "--evaluation-json",
        type=Path,
        default=None,
        help="also write the `sitewatch evaluate --split val --by-dataset --json` report of the same run here "
        "(what `sitewatch train attach-evaluation` stores in the model)",
    )
    args = ap.parse_args(argv)
    if args.upscale_consensus and not (args.auto_scale or any(s > 1 for s in args.extra_scale)):
        ap.error("--upscale-consensus needs an upsampled pass (--auto-scale or an --extra-scale above 1)")

    options: dict = {
        "extra_scales": tuple(args.extra_scale),
        "auto_scale": args.auto_scale,
        "flip_test": args.flip_test,
        "upscale_consensus": args.upscale_consensus,
    }
    if args.no_shared_centre:
        options["shared_centre_area_ratio"] = 0.0
    det = OnnxDetector(args.model, **options)
    thresholds = det.score_thresholds
    pooled = det.info.score_threshold
    det.score_threshold = min(AP_FLOOR, *thresholds.values())
    items = [
        (im, c)
        for im, c in iter_labelled(args.data, "val")
        if not args.datasets or im.dataset in args.datasets
    ]
    groups = site_groups(args.data / AIRBUS) if (args.data / AIRBUS).is_dir() else {}

    def evaluator() -> Evaluator:
        return Evaluator(pooled, 0.5, thresholds)

    pooled_ev = evaluator()
    by_ds: dict[str, Evaluator] = defaultdict(evaluator)
    by_group: dict[str, Evaluator] = defaultdict(evaluator)
    duplicates: dict[str, int] = defaultdict(int)
    pairs: dict[str, int] = defaultdict(int)
    smaller_inside: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    heli_false, airbus_km2 = 0, 0.0
    t0 = time.perf_counter()
    for n, (image, cats) in enumerate(items, 1):
        with open_image(str(image.image_path), image.gsd_m) as scene:
            dets = det.detect(scene, gsd_m=image.gsd_m)
            height, width = scene.height, scene.width
        by_ds[image.dataset].add(image, dets, cats)
        pooled_ev.add(image, dets, cats)
        if image.dataset == AIRBUS:
            by_group[groups.get(image.name, image.name)].add(image, dets, cats)
        kept = [d for d in dets if d.score >= thresholds.get(d.category, pooled)]
        labels = polygons([o.box for o in image.objects])
        centres = np.array([[d.box.cx, d.box.cy] for d in kept]).reshape(-1, 2)
        owner = _inside_any(centres, labels)
        # A box "of" an object: centre inside it and area within a factor 3 of its label's.
        per_object: dict[int, set[str]] = defaultdict(set)
        for d, o in zip(kept, owner, strict=True):
            if o >= 0:
                ratio = d.box.length * d.box.width / max(labels[o].area, 1e-9)
                if 1 / 3 <= ratio <= 3:
                    per_object[int(o)].add(d.category)
                else:
                    smaller_inside[image.dataset][d.category] += 1
        for cats_on in per_object.values():
            if len(cats_on) > 1:
                duplicates[image.dataset] += len(cats_on) - 1
                pairs["+".join(sorted(cats_on))] += 1
        if image.dataset == AIRBUS and image.gsd_m:
            airbus_km2 += width * height * image.gsd_m**2 / 1e6
            heli_false += sum(
                1 for d, o in zip(kept, owner, strict=True) if d.category == "helicopter" and o < 0
            )
        print(f"\r{n}/{len(items)} images", end="", file=sys.stderr)
    print(file=sys.stderr)
    wall = time.perf_counter() - t0

    out: dict = {
        "model": det.label,
        "shared_centre_rule": not args.no_shared_centre,
        "extra_scales": list(args.extra_scale),
        "auto_scale": args.auto_scale,
        "flip_test": args.flip_test,
        "upscale_consensus": args.upscale_consensus,
        "images": len(items),
        "seconds": round(wall, 1),
        "datasets": {},
        "airbus_groups": {},
    }
    for ds, ev in sorted(by_ds.items()):
        r = ev.result()
        out["datasets"][ds] = {
            c: {k: getattr(v, k) for k in ("objects", "ap50", "precision", "recall", "count_mape")}
            for c, v in {**r.categories, **r.pooled}.items()
            if v.objects
        }
        out["datasets"][ds]["cross_category_duplicates"] = duplicates[ds]
    for g, ev in sorted(by_group.items()):
        v = ev.result().categories.get("aircraft")
        if v is not None and v.objects:
            out["airbus_groups"][g] = {
                "images": v.images,
                "objects": v.objects,
                "ap50": v.ap50,
                "count_mape": v.count_mape,
            }
    groups_ap = [g["ap50"] for g in out["airbus_groups"].values() if g["ap50"] is not None]
    out["airbus_worst_group_ap50"] = min(groups_ap) if groups_ap else None
    out["airbus_worst_group_count_mape"] = (
        max((g["count_mape"] or 0.0) for g in out["airbus_groups"].values()) if groups_ap else None
    )
    out["airbus_km2"] = round(airbus_km2, 2)
    out["false_helicopters"] = heli_false
    out["false_helicopters_per_100km2"] = round(100 * heli_false / airbus_km2, 2) if airbus_km2 else None
    out["cross_category_duplicates"] = sum(duplicates.values())
    out["duplicate_pairs"] = dict(pairs)
    out["other_size_detections_on_objects"] = {ds: dict(v) for ds, v in smaller_inside.items()}

    def f(v: float | None, pct: bool = True) -> str:
        return "-" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.1f}")

    print(
        f"{out['model']} on {args.data} (val: {len(items)} images, {wall:.0f} s; shared-centre rule "
        f"{'on' if out['shared_centre_rule'] else 'off'}; automatic extra scale {'on' if out['auto_scale'] else 'off'})"
    )
    print(
        f"{'dataset':<20} {'category':<14} {'objects':>7} {'AP50 %':>7} {'P %':>6} {'R %':>6} {'MAPE %':>7}"
    )
    for ds, cats in out["datasets"].items():
        for c, v in cats.items():
            if isinstance(v, dict):
                print(
                    f"{ds:<20} {c:<14} {v['objects']:>7} {f(v['ap50']):>7} {f(v['precision']):>6} {f(v['recall']):>6} {f(v['count_mape'], False):>7}"
                )
    print(f"\n{'airbus group':<38} {'images':>6} {'objects':>7} {'AP50 %':>7} {'MAPE %':>7}")
    for g, v in out["airbus_groups"].items():
        print(f"{g:<38} {v['images']:>6} {v['objects']:>7} {f(v['ap50']):>7} {f(v['count_mape'], False):>7}")
    print(
        f"worst group: AP50 {f(out['airbus_worst_group_ap50'])} %, count error {f(out['airbus_worst_group_count_mape'], False)} %"
    )
    print(
        f"cross-category duplicates on one labelled object: {out['cross_category_duplicates']} "
        f"({', '.join(f'{k} {v}' for k, v in duplicates.items() if v) or 'none'}; pairs {dict(pairs)})"
    )
    print(
        "detections centred on a labelled object but of another size (not counted as duplicates): "
        f"{out['other_size_detections_on_objects']}"
    )
    print(
        f"false helicopters: {heli_false} on {airbus_km2:.1f} km² of airbus-pleiades = {out['false_helicopters_per_100km2']} per 100 km²"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.evaluation_json:
        by_dataset = {}
        for ds, ev in sorted(by_ds.items()):
            r = ev.result()
            by_dataset[ds] = {**r.categories, **r.pooled}
        report = pooled_ev.result(model=det.label, datasets=sorted(by_ds), skipped=[], by_dataset=by_dataset)
        report.split = "val"
        args.evaluation_json.write_text(json.dumps(report.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
