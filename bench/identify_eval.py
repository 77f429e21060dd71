"""Measure identification accuracy on labelled aircraft of known type and GSD.

    python bench/identify_eval.py ../shared/data [--detector MODEL] [--cache DIR] [--limit N] [--refine]

Prints Markdown; the tables in docs/identify.md come from it. With ``--detector`` it also
measures the detector's box fit against labels of known GSD and repeats the identification
with detector boxes in place of the labels. With ``--refine`` as well, the detector's aircraft
boxes are refined on the image (:mod:`sitewatch.identify.refine`): the silhouette boxes' fit is
measured on the aircraft of DOTA and FAIR1M (not identification targets) and the identification
is repeated with the refined boxes (the detector box where no silhouette is found). The samples, their GSDs and the measurement are
:mod:`sitewatch.identify.evaluate` (its docstring says where each GSD comes from).
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _data import data_tree
from sitewatch.identify.evaluate import (
    REFINE_FIT_DATASETS,
    REFINE_PAIR_DATASETS,
    BoxPair,
    Sample,
    allplanes_samples,
    box_fit_stats,
    boxfit_entry,
    boxfit_without,
    detector_box_pairs,
    detector_samples,
    error_correlation,
    evaluate_samples,
    keypoint_bias,
    label_edge_noise,
    mar20_samples,
    model_id,
    oriented_detector_pairs,
    refine_samples,
    site_bias_spread,
    site_of,
    summarise,
)
from sitewatch.identify.measurement import boxfit_model
from sitewatch.identify.refine import RefineSettings
from sitewatch.types import CATEGORIES


def _fmt_rows(rows: list[dict[str, Any]]) -> str:
    head = (
        "| dataset | type | GSD m/px | length m (±1σ) | ref | err | width m (±1σ) | ref | rank | top-3 (p) "
        "|\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        w_ref = "swing" if r["ref_width_m"] is None else f"{r['ref_width_m']:.2f}"
        top = ", ".join(f"{t} {p:.2f}" for t, p in r["top"])
        lines.append(
            f"| {r['dataset']} | {r['type']} | {r['gsd_m']:.4f} | "
            f"{r['length_m']:.2f} ± {r['length_sigma_m']:.2f} | {r['ref_length_m']:.2f} | "
            f"{r['length_err_rel']:+.1%} | {r['width_m']:.2f} ± {r['width_sigma_m']:.2f} | "
            f"{w_ref} | {r['rank']} | {top} |"
        )
    return "\n".join(lines)


def _fmt_summary(name: str, s: Mapping[str, float]) -> str:
    return (
        f"- **{name}**: {s['objects']} aircraft; length within 10 %: {s['length_within_10pct']:.0%}; "
        f"span within 10 %: {s['span_within_10pct']:.0%} of {s['spans_checked']}; "
        f"true type top-1: {s['true_type_top1']:.0%}, top-3: {s['true_type_in_top3']:.0%}, "
        f"type or family top-3: {s['true_type_or_family_in_top3']:.0%}; "
        f"true dimension within ±2σ: {s['dims_within_2sigma']:.0%} of {s['dims_checked']} dimensions"
    )


def _fmt_boxfit(pairs: list[BoxPair], counts: Mapping[tuple[str, str], tuple[int, int]]) -> str:
    lines = ["Matched / free labelled objects (detector at its score threshold, IoU >= 0.5):", ""]
    lines += [f"- {ds} {cat}: {k}/{n}" for (ds, cat), (k, n) in sorted(counts.items())]
    lines += [
        "",
        "| category | boxes | source | split | n | length bias px / rel | length σ px / rel | width bias px / rel | "
        "width σ px / rel | fit σ_px, σ_rel (L; W) | heading n, bias, rms, median abs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cat, aa, source in itertools.product(CATEGORIES, (False, True), ("detector", "silhouette")):
        pool = [p for p in pairs if p.category == cat and p.axis_aligned == aa and p.source == source]
        for split in ("val", "train", "all", "not id targets"):
            ps = [p for p in pool if split in ("all", p.split)]
            if split == "not id targets":  # independent of the identification samples
                ps = [p for p in pool if p.dataset not in ("allplanes", "mar20-sample")]
                if len(ps) == len(pool):
                    continue
            if len(ps) < 2:
                continue
            st = box_fit_stats(ps)
            head = (
                "–"
                if not st["heading_n"]
                else (
                    f"{st['heading_n']:.0f}, {st['heading_bias_deg']:+.1f}°, "
                    f"{st['heading_sigma_deg']:.1f}°, {st['heading_median_abs_deg']:.1f}°"
                )
            )
            lines.append(
                f"| {cat} | {'envelope' if aa else 'oriented'} | {source} | {split} | {st['n']:.0f} | "
                f"{st['length_bias_px']:+.1f} / {st['length_bias_rel']:+.1%} "
                f"(±{st['length_bias_rel_se']:.1%}) | "
                f"{st['length_sigma_px']:.1f} / {st['length_sigma_rel']:.1%} | "
                f"{st['width_bias_px']:+.1f} / {st['width_bias_rel']:+.1%} "
                f"(±{st['width_bias_rel_se']:.1%}) | "
                f"{st['width_sigma_px']:.1f} / {st['width_sigma_rel']:.1%} | "
                f"{st['length_fit_sigma_px']:.1f}, {st['length_fit_sigma_rel']:.1%}; "
                f"{st['width_fit_sigma_px']:.1f}, {st['width_fit_sigma_rel']:.1%} | {head} |"
            )
    return "\n".join(lines)


def _print_identification(samples: list[Sample], label: str) -> None:
    for priors in (False, True):
        rows = evaluate_samples(samples, use_priors=priors)
        title = "with site priors" if priors else "no priors"
        print(f"### {label}, {title}\n")
        print(_fmt_rows(rows))
        print()
        for ds in ("allplanes", "mar20-sample"):
            part = [r for r in rows if r["dataset"] == ds]
            if part:
                print(_fmt_summary(ds, summarise(part)))
        print(_fmt_summary("all", summarise(rows)))
        print()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=data_tree)
    ap.add_argument(
        "--detector", metavar="MODEL", help="also measure with this detector (.onnx path or registered name)"
    )
    ap.add_argument(
        "--cache",
        type=Path,
        help="folder to cache detections in (keyed by the model's content id and the GSD; clear it when the detection code changes)",
    )
    ap.add_argument("--limit", type=int, help="box fit: at most this many images per dataset")
    ap.add_argument(
        "--refine", action="store_true", help="with --detector: also measure boxes refined on the image"
    )
    args = ap.parse_args(argv)
    samples = allplanes_samples(args.data_dir) + mar20_samples(args.data_dir)
    noise = label_edge_noise(args.data_dir)
    print(
        f"Label edge noise (allplanes drawn box vs keypoint envelope): left {noise['left_sigma_px']:.2f} px, "
        f"top {noise['top_sigma_px']:.2f} px (n={noise['n']})\n"
    )
    print("Raw keypoint bias per type (measured/published - 1; length, span):")
    for t, (bl, bw) in keypoint_bias([s for s in samples if s.dataset == "allplanes"]).items():
        print(f"- {t}: {bl:+.1%}, {bw:+.1%}")
    print()
    _print_identification(samples, "Label boxes / keypoints")
    if args.detector:
        from sitewatch.detect.onnx import OnnxDetector

        detector = OnnxDetector(args.detector)
        tag = model_id(detector.backend.info.path)
        print(
            f"## Detector {detector.name} {detector.version} (sha256 {tag}), score threshold "
            f"{detector.score_threshold}\n"
        )
        pairs, counts = detector_box_pairs(
            args.data_dir, detector, cache_dir=args.cache, tag=tag, limit=args.limit
        )
        print(_fmt_boxfit(pairs, counts))
        print()
        found, missed = detector_samples(samples, args.data_dir, detector, cache_dir=args.cache, tag=tag)
        print(
            f"Identification targets: {len(found)} of {len(samples)} aircraft detected and matched "
            f"(rotated IoU >= 0.5), {missed} missed.\n"
        )
        _print_identification(found, "Detector boxes (bias-corrected)")
        raw = summarise(evaluate_samples(found, correct_bias=False))
        print(_fmt_summary("detector boxes without the bias correction, no priors, all", raw))
        if args.refine:
            _print_refined(args, detector, tag, found, pairs)


def _print_refined(
    args: argparse.Namespace, detector: Any, tag: str, found: list[Sample], det_pairs: list[BoxPair]
) -> None:
    """Box fit of silhouette boxes on DOTA/FAIR1M aircraft, and identification with refined boxes
    (with the bundled box-fit model, then with one fitted without the scored dataset)."""
    settings = RefineSettings()
    print(f"\n## Boxes refined on the image ({settings})\n")
    all_pairs, all_counts = detector_box_pairs(
        args.data_dir,
        detector,
        datasets=REFINE_PAIR_DATASETS,
        cache_dir=args.cache,
        tag=tag,
        limit=args.limit,
        require_gsd=False,
        categories=frozenset({"aircraft"}),
        refine=settings,
    )
    # The silhouette's own model: aircraft that are not identification targets.
    pairs = [p for p in all_pairs if p.dataset in REFINE_FIT_DATASETS]
    counts = {k: v for k, v in all_counts.items() if k[0] in REFINE_FIT_DATASETS}
    refined_ids = {(p.dataset, p.image, p.label) for p in pairs if p.source == "silhouette"}
    n_det = sum(p.source == "detector" for p in pairs)
    print(
        f"Fit datasets (not identification targets): silhouette found for {len(refined_ids)} of "
        f"{n_det} matched aircraft. Rows 'detector' are all matched pairs, 'silhouette' the refined ones; "
        "'detector, refined subset' the detector boxes of the refined ones.\n"
    )
    subset = [p for p in pairs if p.source == "detector" and (p.dataset, p.image, p.label) in refined_ids]
    print(_fmt_boxfit(pairs, counts))
    print()
    print("Detector boxes, refined subset:\n")
    print(_fmt_boxfit(subset, {}).split("\n", 2)[-1].lstrip("\n"))
    print()
    sil = [p for p in pairs if p.source == "silhouette"]
    by_site = Counter(site_of(p.dataset, p.image) for p in sil)
    entry = boxfit_entry(sil, "aircraft")
    print(
        f"Silhouette box-fit entry (`boxfit_entry`, {dict(sorted(by_site.items()))} pairs per site): "
        f"bias {entry['bias_rel']}, sigma_px {entry['sigma_px']}, sigma_rel {entry['sigma_rel']}, "
        f"sigma_site_rel {entry.get('sigma_site_rel')}\n"
    )
    oriented = [p for p in all_pairs if not p.axis_aligned]
    (rho_l, rho_w), n_rho = error_correlation(oriented)
    print(
        f"Correlation of the detector's and the silhouette's relative errors, each about its site's mean, "
        f"on the same {n_rho} aircraft of every dataset with oriented aircraft labels, identification "
        "targets included (`error_correlation`; the "
        f"silhouette `correlation` of boxfit.yaml): length {rho_l:+.2f}, width {rho_w:+.2f}. Per site:\n"
    )
    for site in sorted({site_of(p.dataset, p.image) for p in oriented if p.source == "silhouette"}):
        (sl, sw), n = error_correlation([p for p in oriented if site_of(p.dataset, p.image) == site])
        print(f"- {site}: {n} aircraft, length {sl:+.2f}, width {sw:+.2f}")
    print()
    refined, seconds = refine_samples(found, args.data_dir, settings)
    n_sil = sum(s.box_source == "silhouette" for s in refined)
    print(
        f"Identification targets: silhouette found for {n_sil} of {len(refined)} detector boxes "
        f"(the others measured from the detector box); refinement {1000 * sum(seconds) / len(seconds):.0f} ms "
        f"per aircraft (median {1000 * sorted(seconds)[len(seconds) // 2]:.0f} ms).\n"
    )
    _print_identification(refined, "Refined boxes (silhouette, else detector; bias-corrected)")
    raw = summarise(evaluate_samples(refined, correct_bias=False))
    print(_fmt_summary("refined boxes without the bias correction, no priors, all", raw))
    _print_left_out(refined, det_pairs, oriented)


def _print_left_out(refined: list[Sample], det_pairs: list[BoxPair], refine_pairs: list[BoxPair]) -> None:
    """Identification of the targets of each site with the detector's aircraft box-fit model
    (from ``det_pairs``) and the silhouette correlation (from ``refine_pairs``, detector and
    silhouette boxes of the same labels) refitted on the other sites' pairs: the bundled model is
    fitted on pairs that include the targets."""
    print("\n### Refined boxes, detector box-fit model fitted without the scored site\n")
    print(
        "The bundled aircraft box-fit model is fitted on oriented pairs that include the "
        "identification targets; here the targets of each site (`site_of`: allplanes' two bases, "
        "each on several dates and providers; MAR20) are measured with the model refitted by the "
        "same rule on the other sites' pairs (`boxfit_without`), and the correlation of the detector's "
        "and the silhouette's errors on the other sites' aircraft. The silhouette's own model is "
        "fitted on DOTA/FAIR1M aircraft only and stays.\n"
    )
    print("Detector aircraft boxes against oriented labels, per site (relative bias ± its standard error):\n")
    aircraft = oriented_detector_pairs(det_pairs, "aircraft")
    for site in sorted({site_of(p.dataset, p.image) for p in aircraft}):
        q = [p for p in aircraft if site_of(p.dataset, p.image) == site]
        if len(q) >= 2:
            st = box_fit_stats(q)
            print(
                f"- {site}: {len(q)} pairs on {len({p.image for p in q})} images: length "
                f"{st['length_bias_rel']:+.1%} ± {st['length_bias_rel_se']:.1%}, width "
                f"{st['width_bias_rel']:+.1%} ± {st['width_bias_rel_se']:.1%}"
            )
    spread = site_bias_spread(det_pairs, "aircraft")
    print(
        f"\nBetween-site spread of these biases (random effects, DerSimonian–Laird, {spread['sites']:.0f} "
        f"sites with at least 3 pairs): length {spread['length_mean']:+.1%} ± {spread['length_tau']:.1%}, "
        f"width {spread['width_mean']:+.1%} ± {spread['width_tau']:.1%} (common mean ± the standard "
        "deviation of the sites' own biases about it).\n"
    )
    entry = boxfit_entry(aircraft, "aircraft")
    print(
        f"Random-effects box-fit entry on all {len(aircraft)} pairs (`boxfit_entry`; sites of fewer than 3 "
        f"pairs left out): bias {entry['bias_rel']}, sigma_px {entry['sigma_px']}, sigma_rel (within a site) "
        f"{entry['sigma_rel']}, sigma_site_rel {entry.get('sigma_site_rel')}\n"
    )
    parts: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for site in sorted({site_of(s.dataset, s.image) for s in refined}):
        mine = [s for s in refined if site_of(s.dataset, s.image) == site]
        doc, n = boxfit_without(det_pairs, "aircraft", site, refine_pairs)
        fit = doc["categories"]["aircraft"]
        print(
            f"- {site} ({len(mine)} targets): model fitted on the {n} other pairs: bias {fit['bias_rel']}, "
            f"sigma_px {fit['sigma_px']}, sigma_rel {fit['sigma_rel']}, sigma_site_rel {fit.get('sigma_site_rel')}; "
            f"silhouette correlation {doc['silhouette']['categories']['aircraft']['correlation']}"
        )
        with boxfit_model(doc):
            for priors in (False, True):
                parts[priors] += evaluate_samples(mine, use_priors=priors)
    print()
    print(_fmt_rows(parts[False]))
    print()
    for priors in (False, True):
        title = "with site priors" if priors else "no priors"
        print(_fmt_summary(f"box-fit model without the scored site, {title}, all", summarise(parts[priors])))


if __name__ == "__main__":
    main()
