"""Calibration of type probabilities: ECE and reliability bins, temperature fit, synthetic boxes, real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sitewatch.identify import calibration as cal
from sitewatch.identify.library import load_library
from sitewatch.identify.measurement import BoxFit


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
    assert cal.fit_temperature([samples]) == pytest.approx(2.0, rel=0.15)


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
def test_calibration_report_on_real_labelled_aircraft(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "rel.png"
    cal.main([str(data_dir), "--per-type", "3", "--figure", str(png)])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| aircraft | label | real | 28 |"))
    assert len(row.split("|")) == 15
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
