"""Calibration of type probabilities: ECE and reliability bins, temperature fit, synthetic boxes, real data."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from sitewatch.identify import calibration as cal
from sitewatch.identify import candidates as cand
from sitewatch.identify.library import load_library
from sitewatch.identify.measurement import BoxFit, box_fit


def test_reliability_bins_and_ece_exact() -> None:
    rel = cal.reliability(np.array([0.1, 0.1, 0.9, 0.9]), np.array([False, False, True, False]))
    # bin [0.1, 0.2): stated 0.1, right 0 -> 0.1; bin [0.9, 1]: stated 0.9, right 0.5 -> 0.4; each half the samples
    assert rel["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)
    assert [(n, round(p, 3), acc) for _, _, n, p, acc in rel["bins"]] == [(2, 0.1, 0.0), (2, 0.9, 0.5)]
    assert cal.reliability(np.array([]), np.array([]))["ece"] is None


def test_fit_temperature_recovers_a_known_temperature() -> None:
    lib = load_library()
    types = [t for t in lib.types if t.category == "ship"]
    rng = np.random.default_rng(7)
    samples = []
    for _ in range(600):
        ll = rng.normal(0.0, 3.0, len(types))
        logits = np.append(ll / 2.0 + math.log(0.9 / len(types)), -12.0 / 2.0 + math.log(0.1))
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = rng.choice(len(p), p=p)
        if k == len(types):
            continue  # an outlier: no true library type
        samples.append(cal.Scored("ship", "detector", "synthetic", types[k].id, types, ll, -12.0,
                                  np.full(len(types), math.log(0.9 / len(types))), math.log(0.1)))  # fmt: skip
    assert cal.fit_temperature([samples], lib, levels=("type",)) == pytest.approx(2.0, rel=0.15)
    assert cal.fit_temperature([samples], lib) == pytest.approx(2.0, rel=0.15)  # every level, same model


def _two_types(category: str, truth: int, ll: tuple[float, float], log_outlier: float) -> cal.Scored:
    """A sample over two library types of ``category`` that share role and size class and have no family."""
    lib = load_library()
    pool = [t for t in lib.types if t.category == category and not t.family]
    a, b = next(
        (a, b)
        for i, a in enumerate(pool)
        for b in pool[i + 1 :]
        if (a.role, a.size_class) == (b.role, b.size_class)
    )
    prior = math.log(1.0 / 3.0)
    return cal.Scored(category, "detector", "synthetic", (a, b)[truth].id, [a, b], np.array(ll), log_outlier,
                      np.full(2, prior), prior)  # fmt: skip


def test_hierarchy_brier_exact() -> None:
    lib = load_library()
    # Two types and unknown at 1/3 each, the truth the first type:
    # type and family level (no family): (2/3)^2 + (1/3)^2 + (1/3)^2 = 2/3; role and size level (one
    # group holding both types at 2/3): (1/3)^2 + (1/3)^2 = 2/9; the mean of the four levels 4/9.
    s = _two_types("aircraft", 0, (0.0, 0.0), 0.0)
    assert cal.hierarchy_brier([s], 1.0, lib) == pytest.approx(4.0 / 9.0)
    assert cal.hierarchy_brier([s], 1.0, lib, levels=("type",)) == pytest.approx(cal.brier([s], 1.0))
    assert cal.hierarchy_brier([s], 1.0, lib, levels=("role", "size")) == pytest.approx(2.0 / 9.0)


def test_label_worse_compares_the_label_statement_with_t1() -> None:
    lib = load_library()
    # Equal priors of the two types and unknown: at T = 1 the first type is stated at
    # 1 / (1 + e^-10 + e^-60) ~ 1; at T = 10 the log-likelihoods become (0, -1, -6):
    # p = 1 / (1 + e^-1 + e^-6) = 0.730 >= 0.7, still a type label.
    right = _two_types("ship", 0, (0.0, -10.0), -60.0)
    wrong = _two_types("ship", 1, (0.0, -10.0), -60.0)
    [[p1], [p10]] = [cal.statements([right], t, lib)["label"][0] for t in (1.0, 10.0)]
    assert p1 == pytest.approx(1 / (1 + math.exp(-10) + math.exp(-60)))
    assert p10 == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-6)))
    # right at ~1: ECE ~0 -> 0.27 at T = 10; wrong at ~1: ECE ~1 -> 0.73
    assert cal.label_worse({"synthetic": [right]}, 10.0, lib)
    assert not cal.label_worse({"synthetic": [wrong]}, 10.0, lib)
    assert not cal.label_worse({"real": [wrong], "synthetic": [right]}, 10.0, lib)  # worse on one origin only


def test_fit_keeping_the_label_never_worsens_the_label_statement() -> None:
    lib = load_library()
    drawn = cal.synthetic(
        "aircraft",
        box_fit("aircraft"),
        source="detector",
        library=lib,
        rng=np.random.default_rng(3),
        per_type=4,
    )
    # The same boxes ranked with log-likelihoods three times too sharp: ll * 3 / T = ll / (T / 3), so
    # the free fit finds exactly three times the temperature of the boxes as modelled.
    scored = [cal.Scored(s.category, s.source, s.origin, s.truth, s.types, s.ll * 3.0, s.log_outlier * 3.0,
                         s.log_prior, s.log_prior_unknown) for s in drawn]  # fmt: skip
    free = cal.fit_temperature([scored], lib)
    kept = cal.fit_temperature([scored], lib, keep_label=True)
    assert free == pytest.approx(3.0 * cal.fit_temperature([drawn], lib), rel=0.01)
    assert 1.0 <= kept <= free or free <= kept <= 1.0
    at_1, at_kept = cal.label_ece([scored], 1.0, lib), cal.label_ece([scored], kept, lib)
    assert at_1 is not None and at_kept is not None and at_kept <= at_1


def test_synthetic_silhouette_boxes_only_where_the_pipeline_refines() -> None:
    lib = load_library()
    exact = BoxFit((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    every, long = (
        cal.synthetic(
            "aircraft",
            exact,
            source="silhouette",
            library=lib,
            rng=np.random.default_rng(5),
            per_type=2,
            gsds_m=(0.3,),
            min_length_px=min_length,
        )  # fmt: skip
        for min_length in (0.0, 120.0)
    )
    kinds = [t for t in lib.types if t.category == "aircraft"]
    assert len(every) == 2 * len(kinds)
    # Draws are made either way, so the kept ones are the same boxes as in the full run.
    by_ll = {s.ll.tobytes() for s in every}
    assert all(s.ll.tobytes() in by_ll for s in long)
    for t in kinds:
        long_px, tau = max(t.length_m, t.width_m, t.span_spread_m or 0.0) / 0.3, t.tolerance_rel or 0.1
        n = sum(s.truth == t.id for s in long)
        if long_px * (1 + 5 * tau) < 120.0:
            assert n == 0, t.id  # too small to be refined at 0.3 m
        if min(t.length_m, t.width_m) / 0.3 * (1 - 5 * tau) >= 120.0:
            assert n == 2, t.id


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_synthetic_combined_boxes_draw_a_correlated_detector_box(monkeypatch: pytest.MonkeyPatch, rho: float) -> None:
    # Both boxes with 10 % relative noise and nothing else: log(detector side / silhouette side) then
    # has a standard deviation of sqrt(2 (1 - rho)) x 0.1, whatever the type's true dimensions.
    noisy = BoxFit((0.0, 0.0), (0.1, 0.1), (0.0, 0.0), (0.0, 0.0))
    monkeypatch.setattr(cal, "box_fit", lambda category, source="detector": noisy)
    monkeypatch.setattr(cal, "box_correlation", lambda category: (rho, rho))
    pairs = []

    def spy(detector, silhouette, category):  # noqa: ANN001, ANN202
        pairs.append((detector, silhouette))
        return silhouette, noisy

    monkeypatch.setattr(cal, "combine_boxes", spy)
    lib = load_library()
    samples = cal.synthetic("ship", noisy, source="silhouette", library=lib, rng=np.random.default_rng(3),
                            per_type=60, gsds_m=(0.5,), combined=True)  # fmt: skip
    assert len(samples) == len(pairs) == 60 * len([t for t in lib.types if t.category == "ship"])
    assert all(d.length >= d.width and s.length >= s.width for d, s in pairs)
    # the sides are sorted per box, so draws that swap which side is longer are left out
    ratios = np.log([(d.length / s.length, d.width / s.width) for d, s in pairs
                     if abs(math.log(s.length / s.width)) > 0.5])  # fmt: skip
    assert len(ratios) > 500
    want = math.sqrt(2.0 * (1.0 - rho)) * 0.1
    assert ratios.std(axis=0) == pytest.approx([want, want], rel=0.1)


def test_silhouette_temperature_is_used_for_refined_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.identify import identify_detections
    from sitewatch.identify.settings import IdentifySettings
    from sitewatch.types import Detection, OrientedBox
    from test_identify_refine import CENTRE, HEADING_DEG, LENGTH_PX, SPAN_PX, _aircraft_scene

    monkeypatch.setattr(cand, "_calibration", lambda: {"temperature": {"detector": {"aircraft": 1.5}}})
    assert cand.calibrated_temperature("aircraft", "silhouette") == 1.5  # none fitted: the detector's
    temps = {"detector": {"aircraft": 1.5}, "silhouette": {"aircraft": 3.0}}
    monkeypatch.setattr(cand, "_calibration", lambda: {"temperature": temps})
    assert cand.calibrated_temperature("aircraft", "silhouette") == 3.0
    assert cand.calibrated_temperature("ship", "silhouette") == 1.0

    lib = load_library()
    scene = _aircraft_scene()
    det = Detection(
        OrientedBox.make(*CENTRE, 0.85 * LENGTH_PX, 0.85 * SPAN_PX, HEADING_DEG + 4), "aircraft", 0.9
    )
    for settings, temperature in ((IdentifySettings(), 3.0), (IdentifySettings(refine=False), 1.5)):
        [out] = identify_detections([det], gsd_m=0.25, scene=scene, settings=settings, k=3)
        m = out.measurement
        assert m is not None
        want = cand.rank_types(m.length_m, m.width_m, m.length_sigma_m, m.width_sigma_m, "aircraft", lib,
                               temperature=temperature)  # fmt: skip
        got = {c.type_id: c.probability for c in out.candidates}
        assert {sc.type.id: round(sc.probability, 4) for sc in want.types[:3]} == {
            i: p for i, p in got.items() if i != cand.UNKNOWN_ID
        }


def test_synthetic_boxes_without_noise_rank_the_true_type_first() -> None:
    lib = load_library()
    exact = BoxFit((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    rng = np.random.default_rng(1)
    samples = cal.synthetic("ship", exact, source="label", library=lib, rng=rng, per_type=2)
    assert len(samples) == 2 * len([t for t in lib.types if t.category == "ship"])
    st = cal.statements(samples, 1.0, lib)
    p, right = st["type"]
    assert right.mean() >= 0.85  # only the 2 % GSD error and the 4 % intrinsic tolerance blur it
    lp, lr = st["label"]
    assert lr.mean() >= 0.9 and (lp >= 0.7).all()


@pytest.mark.slow
def test_calibration_report_on_real_labelled_aircraft(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "rel.png"
    cal.main([str(data_dir), "--per-type", "3", "--figure", str(png)])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| aircraft | label | real | 28 |"))
    assert len(row.split("|")) == 12
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_refined_real_aircraft_are_scored_as_the_pipeline_ranks_them(data_dir: Path) -> None:
    """The calibration's real silhouette samples are what identify_detections outputs for the same box."""
    from sitewatch.identify import evaluate as ev
    from sitewatch.identify import identify_detections
    from sitewatch.imagery import open_scene
    from sitewatch.types import Detection

    lib = load_library()
    samples = ev.allplanes_samples(data_dir)
    first = samples[0].image
    boxes = [dataclasses.replace(s, box_source="detector") for s in samples if s.image == first][:4]
    refined, _ = ev.refine_samples(boxes, data_dir)
    assert any(s.box_source == "silhouette" for s in refined)
    scored = cal.real(refined, lib)
    temps = {
        src: {"aircraft": cand.calibrated_temperature("aircraft", src)} for src in ("detector", "silhouette")
    }
    [path] = [i.image_path for i in ev.iter_dataset(data_dir / "allplanes") if i.name == first]
    with open_scene(path, gsd_m=boxes[0].gsd_m, force=True) as scene:
        dets = [Detection(s.box, "aircraft", 0.9) for s in boxes]
        out = identify_detections(
            dets, gsd_m=boxes[0].gsd_m, gsd_rel_sigma=boxes[0].gsd_rel_sigma, scene=scene
        )
    for s, det in zip(scored, out, strict=True):
        want = s.candidates(cal.temperature_of(s, temps))
        got = {c.type_id: c.probability for c in det.candidates}
        for c in want[:5]:
            assert got[c.type_id] == pytest.approx(c.probability, abs=6e-5), (s.source, c.type_id)


def test_left_out_sites_measures_each_site_without_it() -> None:
    """Each site's aircraft are measured with the box-fit model refitted without that site and
    ranked at temperatures fitted without it; the pooled statements are those of the sites."""
    from sitewatch.identify.evaluate import BoxPair, Sample, boxfit_without
    from sitewatch.identify.measurement import boxfit_model
    from sitewatch.identify.refine import RefineSettings
    from sitewatch.types import OrientedBox

    lib = load_library()

    def pairs(site: str, bias: float) -> list[BoxPair]:
        out = []
        for k in range(4):
            L = 150.0 + 20 * k
            lab = OrientedBox.make(0, 0, L, 0.9 * L, 0)
            rel = bias + (0.02 if k % 2 else -0.02)
            out.append(BoxPair(site, str(k), "train", "aircraft", False, lab, OrientedBox.make(0, 0, L * (1 + rel), 0.9 * L * (1 + rel), 0), 0.9))
        return out

    det_pairs = pairs("a", -0.1) + pairs("b", 0.05) + pairs("c", 0.0)
    kc135 = lib.get("kc-135r")
    found = [
        Sample(site, f"{site}{k}", "kc-135r", OrientedBox.make(0, 0, kc135.length_m / 0.2, kc135.width_m / 0.2, 0), 0.2, 0.02, "test", box_source="detector")
        for site in ("a", "b")
        for k in range(3)
    ]
    per_site, pooled = cal.left_out_sites(found, found, det_pairs, lib, seed=1, per_type=2, refine=RefineSettings())
    assert [(r["site"], r["n"], r["pairs"]) for r in per_site] == [("a", 3, 8), ("b", 3, 8)]
    assert len(pooled["type"][0]) == 6
    expected_p = []
    for r in per_site:
        doc, _ = boxfit_without(det_pairs, "aircraft", r["site"])
        with boxfit_model(doc):
            scored = cal.real([s for s in found if s.dataset == r["site"]], lib)
        expected_p += list(cal.statements(scored, r["temperature"], lib)["type"][0])
    assert pooled["type"][0] == pytest.approx(expected_p)
    # The two sites' refits differ, so their aircraft (identical boxes) are measured differently.
    assert pooled["type"][0][0] != pytest.approx(pooled["type"][0][3])
