"""Measurement error budget, type ranking, unknown GSD and inventories (exact synthetic answers)."""

from __future__ import annotations

import logging
import math

import pytest

from sitewatch.identify import (
    UNKNOWN_ID,
    identify_detection,
    identify_detections,
    inventory_by,
    load_library,
    measure_box,
    rank_types,
)
from sitewatch.identify.measurement import BoxFit, box_fit
from sitewatch.types import Detection, OrientedBox


def _det(length_m: float, width_m: float, gsd: float = 0.5, category: str = "aircraft", heading: float = 30.0) -> Detection:
    return Detection(OrientedBox.make(500, 500, length_m / gsd, width_m / gsd, heading), category, 0.9)


def test_measurement_error_budget_is_exact() -> None:
    box = OrientedBox.make(0, 0, 100.0, 40.0, 10.0)
    m = measure_box(box, "ship", gsd_m=0.5, gsd_rel_sigma=0.04)
    fit = box_fit("ship")
    assert m.length_m == pytest.approx(50.0 / (1 + fit.bias_rel[0]), abs=1e-3)
    sig_fit = 0.5 * math.hypot(fit.sigma_px[0], fit.sigma_rel[0] * 100.0)
    assert m.length_sigma_m == pytest.approx(math.hypot(0.04 * m.length_m, sig_fit), abs=1e-3)
    assert m.heading_deg is None  # not georeferenced
    a = measure_box(box, "aircraft", gsd_m=0.5, gsd_rel_sigma=0.04)
    assert a.length_m == pytest.approx(50.0 / (1 + box_fit("aircraft").bias_rel[0]), abs=1e-3)


def test_off_nadir_stretch_shortens_and_widens_sigma_along_view_azimuth() -> None:
    box = OrientedBox.make(0, 0, 100.0, 40.0, 0.0)  # length axis north-south on a north-up image
    nadir = measure_box(box, "aircraft", gsd_m=0.5)
    along = measure_box(box, "aircraft", gsd_m=0.5, off_nadir_deg=30.0, view_azimuth_deg=180.0)
    across = measure_box(box, "aircraft", gsd_m=0.5, off_nadir_deg=30.0, view_azimuth_deg=90.0)
    stretch = box_fit("aircraft").elevation_frac[0] * nadir.length_m * math.tan(math.radians(30.0))
    assert along.length_m == pytest.approx(nadir.length_m - stretch / 2, abs=0.01)
    assert along.length_sigma_m > nadir.length_sigma_m
    assert across.length_m == pytest.approx(nadir.length_m, abs=0.01)  # view across the length axis
    assert across.width_m < nadir.width_m


def test_exact_dimensions_rank_the_type_first() -> None:
    lib = load_library()
    for type_id in ("an-124", "c-17", "su-24", "mi-26", "kuznetsov", "t-72b3"):
        t = lib.get(type_id)
        cat = t.category
        r = rank_types(t.length_m, t.width_m, 0.02 * t.length_m, 0.02 * t.width_m, cat, lib)
        assert r.types[0].type.id == type_id, (type_id, [s.type.id for s in r.types[:3]])
        assert r.unknown < 0.1
        assert sum(s.probability for s in r.types) + r.unknown == pytest.approx(1.0)


def test_swing_wing_states_and_sorted_dims() -> None:
    lib = load_library()
    # Tu-160 with wings swept: 54.1 x 35.6
    r = rank_types(54.1, 35.6, 1.0, 0.8, "aircraft", lib)
    assert r.types[0].type.id == "tu-160" and r.types[0].state == "swept"
    r = rank_types(54.1, 55.7, 1.0, 1.0, "aircraft", lib)  # spread: span > length, given unsorted
    assert r.types[0].type.id == "tu-160" and r.types[0].state == "spread"
    # An-124: span (73.3) longer than length (68.96); the detector reports the long side as length
    r = rank_types(73.3, 68.96, 1.5, 1.5, "aircraft", lib)
    assert r.types[0].type.id == "an-124"


def test_unknown_mass_for_objects_that_fit_nothing() -> None:
    lib = load_library()
    r = rank_types(60.0, 12.0, 1.0, 0.5, "aircraft", lib)  # a 60 m aircraft with a 12 m span
    assert r.unknown > 0.9
    assert r.outlier_density == pytest.approx(1.0 / (85.0 * 87.0))
    assert r.roles["unknown/other"] == pytest.approx(r.unknown)


def test_site_priors_are_applied_and_recorded() -> None:
    lib = load_library()
    plain = rank_types(46.6, 50.5, 2.0, 2.0, "aircraft", lib)  # Il-76 / Il-78 / A-50 / E-3 region
    assert not plain.prior_applied
    weighted = rank_types(46.6, 50.5, 2.0, 2.0, "aircraft", lib, priors={"operators": ["RU"], "types": {"il-78": 5.0}})
    assert weighted.prior_applied and weighted.types[0].type.id == "il-78"
    w = {s.type.id: s.prior_weight for s in weighted.types}
    assert w["il-78"] == pytest.approx(15.0) and w["e-3"] == 1.0 and w["a-50"] == 3.0
    p_plain = {s.type.id: s.probability for s in plain.types}
    p_w = {s.type.id: s.probability for s in weighted.types}
    assert p_w["e-3"] < p_plain["e-3"]
    [det] = identify_detections([_det(46.6, 50.5)], gsd_m=0.5, priors={"operators": ["RU"]}, k=3)
    ru = [c for c in det.candidates if c.type_id != UNKNOWN_ID]
    assert all(c.prior_weight == 3.0 for c in ru if lib.get(c.type_id).operators.count("RU"))


#: A fixed box-fit model (sitewatch-det 1.4.0's measurements) for tests whose exact answers should not
#: move each time the shipped detector's box fit is measured again.
FIXED_FIT = {
    "aircraft": BoxFit((7.6, 2.0), (0.063, 0.090), (-0.005, 0.030), (0.28, 0.08)),
    "large-vehicle": BoxFit((1.5, 1.5), (0.110, 0.118), (-0.031, -0.022), (0.35, 0.35)),
}


def _seen(length_m: float, width_m: float, category: str = "aircraft", fit: BoxFit | None = None) -> Detection:
    """A detector box (0.5 m GSD, 0.01 px as stored) of an object of these true dimensions: the box-fit bias
    applied, the length bias to the box's long side (an An-124's span) and the width bias to its short side."""
    b = (fit or box_fit(category)).bias_rel
    long_m, short_m = max(length_m, width_m), min(length_m, width_m)
    return _det(round(long_m * (1 + b[0]) / 0.5, 2) * 0.5, round(short_m * (1 + b[1]) / 0.5, 2) * 0.5, category=category)


def test_identify_detections_sets_measurement_and_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    # the size likelihood as modelled (temperature 1), whatever data/calibration.yaml holds
    monkeypatch.setattr("sitewatch.identify.candidates.calibrated_temperature", lambda *a, **k: 1.0)
    # and a fixed box-fit model, whatever data/boxfit.yaml holds for the shipped detector
    monkeypatch.setattr("sitewatch.identify.identification.box_fit", lambda cat, source="detector": FIXED_FIT[cat])
    dets = [
        _seen(68.96, 73.3, fit=FIXED_FIT["aircraft"]),
        _seen(22.53, 17.64, fit=FIXED_FIT["aircraft"]),
        _seen(9.53, 3.59, category="large-vehicle", fit=FIXED_FIT["large-vehicle"]),
    ]
    out = identify_detections(dets, gsd_m=0.5, k=3)
    assert [d.box for d in out] == [d.box for d in dets]
    assert out[0].best_type.type_id == "an-124" and out[0].best_type.role == "heavy transport"
    assert out[1].best_type.type_id == "su-24"
    assert out[2].best_type.role == "MBT"
    for d in out:
        assert len([c for c in d.candidates if c.type_id != UNKNOWN_ID]) == 3
        assert any(c.type_id == UNKNOWN_ID for c in d.candidates)
        assert sum(c.probability for c in d.candidates) <= 1.0 + 1e-6
        assert Detection.from_dict(d.to_dict()) == d
    # top-3 candidates only: no label level reaches 0.7 from them, so nothing is named
    assert inventory_by(out, by="type") == {"unidentified aircraft": 2, "unidentified large-vehicle": 1}
    full = identify_detections(dets, gsd_m=0.5)  # default: top 5 + every type >= 0.005
    assert all(len(d.candidates) > 6 for d in full)
    assert inventory_by(full, by="type") == {
        "very large aircraft (over 60 m: wide-body or strategic airlifter)": 1,
        "fighter-sized aircraft (13–24 m)": 1,
        "unidentified large-vehicle": 1,
    }
    assert inventory_by(full, by="type", threshold=0.2) == {"An-124 Ruslan": 1, "Su-24M (spread)": 1, "T-72/T-90 family": 1}
    roles = inventory_by(full + [dets[0]], by="role")  # no role reaches 0.7: the size class is said
    assert roles["very large aircraft (over 60 m: wide-body or strategic airlifter)"] == 1 and roles["unidentified aircraft"] == 1
    assert inventory_by(full, by="role", threshold=0.2)["fighter"] == 1
    with pytest.raises(ValueError, match="by must be"):
        inventory_by(out, by="colour")  # type: ignore[arg-type]


def test_unknown_gsd_gives_pixels_and_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    det = _det(68.96, 73.3)
    ident = identify_detection(det, gsd_m=None)
    assert ident.measurement is None and ident.ranking is None and ident.candidates() == ()
    assert ident.length_px == pytest.approx(73.3 / 0.5) and "GSD unknown" in ident.reason
    with caplog.at_level(logging.WARNING, logger="sitewatch.identify"):
        out = identify_detections([det], gsd_m=None)
    assert out == [det]
    assert "GSD unknown" in caplog.text
