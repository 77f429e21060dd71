"""Identification hierarchy: type → family → role → size class, with exact synthetic answers."""

from __future__ import annotations

import pytest

from sitewatch.errors import LibraryError
from sitewatch.identify import IdentifySettings, label_candidates, label_detection, load_library
from sitewatch.identify.library import library_from_rows, size_class_of
from sitewatch.pipeline import inventory
from sitewatch.types import Candidate, Detection, OrientedBox, Pass
from test_library import GOOD


def _c(type_id: str, p: float) -> Candidate:
    lib = load_library()
    if type_id == "unknown":
        return Candidate("unknown", "unknown/other", "unknown/other", p)
    t = lib.get(type_id)
    return Candidate(t.id, t.name, t.role, p)


def _det(*cands: Candidate, category: str = "aircraft") -> Detection:
    return Detection(OrientedBox(10, 10, 40, 30, 0), category, 0.9, candidates=tuple(cands))


def test_levels_from_type_to_category() -> None:
    # one type above the threshold: the type
    lab = label_candidates([_c("an-124", 0.75), _c("c-5m", 0.2), _c("unknown", 0.05)], "aircraft")
    assert (lab.level, lab.key, lab.text) == ("type", "an-124", "An-124 Ruslan") and lab.probability == pytest.approx(0.75)
    # Il-76MD 0.41 + A-50 0.22 + Il-78M 0.19 = 0.82: the family, its three members behind it
    lab = label_candidates([_c("il-76md", 0.41), _c("c-17", 0.1), _c("a-50", 0.22), _c("il-78", 0.19), _c("unknown", 0.08)], "aircraft")
    assert (lab.level, lab.key, lab.text) == ("family", "il-76", "Il-76 family")
    assert lab.probability == pytest.approx(0.82) and [c.type_id for c in lab.candidates] == ["il-76md", "a-50", "il-78"]
    assert lab.describe() == "Il-76 family (p 0.82: Il-76MD 0.41, A-50 0.22, Il-78M 0.19)"
    # no family reaches it, but the role does: An-124 0.4 + C-5M 0.35 (+ Il-76MD 0.05 of the Il-76 family)
    lab = label_candidates([_c("an-124", 0.4), _c("c-5m", 0.35), _c("il-76md", 0.05), _c("b747-400", 0.2)], "aircraft")
    assert (lab.level, lab.key, lab.text) == ("role", "heavy transport", "heavy transport") and lab.probability == pytest.approx(0.8)
    # role groups split (airliner 0.6, maritime patrol 0.2, tanker 0.15) but all four are 33–45 m
    lab = label_candidates([_c("a320", 0.3), _c("b737-800", 0.3), _c("il-38", 0.2), _c("kc-135r", 0.15)], "aircraft")
    assert (lab.level, lab.key) == ("size", "aircraft-medium") and lab.text == "medium airliner-sized aircraft (33–45 m)"
    assert lab.probability == pytest.approx(0.95)
    # sizes split too: unidentified, the candidates still listed
    lab = label_candidates([_c("a320", 0.3), _c("c-5m", 0.3), _c("il-38", 0.2), _c("unknown", 0.2)], "aircraft")
    assert (lab.level, lab.text, lab.identified) == ("category", "unidentified aircraft", False)
    assert "no level reaches 0.70" in lab.describe() and "A320ceo 0.30" in lab.describe()
    assert label_candidates([], "ship").text == "unidentified ship"


def test_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    cands = [_c("il-76md", 0.41), _c("a-50", 0.22), _c("il-78", 0.19), _c("c-17", 0.1)]
    assert label_candidates(cands, "aircraft").level == "family"  # 0.82 >= 0.7
    assert label_candidates(cands, "aircraft", threshold=0.9).level == "size"  # all four are 45–60 m: 0.92
    monkeypatch.setenv("SITEWATCH_IDENTIFY_LABEL_THRESHOLD", "0.95")
    assert IdentifySettings().label_threshold == 0.95
    assert label_detection(_det(*cands)).level == "category"
    monkeypatch.setenv("SITEWATCH_IDENTIFY_LABEL_THRESHOLD", "0.4")
    with pytest.raises(ValueError, match="greater than 0.5"):
        IdentifySettings()


def test_inventory_by_type_never_names_a_type_below_the_threshold() -> None:
    dets = [
        _det(_c("an-30", 0.25), _c("an-26", 0.24), _c("an-72", 0.2), _c("be-200", 0.2)),  # An-24 family 0.49; 24–33 m 0.89
        _det(_c("an-30", 0.3), _c("an-26", 0.45), _c("an-72", 0.2)),  # An-24/An-26 family 0.75
        _det(_c("an-30", 0.3), _c("an-26", 0.45), _c("an-72", 0.2)),
        _det(_c("b747-400", 0.72), _c("b777-300er", 0.2)),  # the type itself
        _det(_c("b747-400", 0.35), _c("il-96", 0.3), _c("a-10", 0.3)),  # nothing
    ]
    p = Pass(site="x", scene_path="a.tif", acquired=None, footprint_wkt=None, aoi_coverage=1.0, gsd_m=0.5, model="m", detections=dets)
    inv = inventory([p], "type")
    assert inv["threshold"] == 0.7
    assert inv["passes"][0]["counts"] == {
        "An-24/An-26 family": 2,
        "B747-400": 1,
        "small transport-sized aircraft (24–33 m)": 1,
        "unidentified aircraft": 1,
    }
    roles = inventory([p], "role")["passes"][0]["counts"]
    # An-26 + An-72 (tactical transport) 0.65 and An-30 (ISR) 0.3: no role, the size class
    assert roles == {"airliner": 1, "small transport-sized aircraft (24–33 m)": 3, "unidentified aircraft": 1}


def test_library_rows_carry_sourced_families_and_consistent_size_classes() -> None:
    lib = load_library()
    assert {t.id for t in lib.types if t.family == "il-76"} == {"il-76md", "il-78", "a-50"}
    assert {t.id for t in lib.types if t.family == "a320"} == {"a320", "a320neo", "a321", "a321neo"}
    assert {t.id for t in lib.types if t.family == "b737"} == {"b737-800", "b737-max8", "p-8"}
    for f in lib.families.values():
        assert f.source.startswith("http"), f.id
        assert sum(t.family == f.id for t in lib.types) >= 2, f.id
    for t in lib.types:
        sc = lib.size_classes[t.size_class]
        assert sc.category == t.category and sc.long_side_m[0] <= t.long_side_m < sc.long_side_m[1], t.id
    assert lib.get("il-76md").size_class == "aircraft-large" and lib.get("b-1b").size_class == "aircraft-medium"
    assert size_class_of("aircraft", 62.0, lib.size_classes) == "aircraft-very-large"
    # a row without the fields gets its size class from its dimensions; bad fields are rejected
    assert library_from_rows([GOOD]).types[0].size_class == "aircraft-fighter"
    with pytest.raises(LibraryError, match="family 'no-such' not in families.yaml"):
        library_from_rows([{**GOOD, "family": "no-such"}])
    with pytest.raises(LibraryError, match="size_class 'aircraft-large' does not hold its long side 15 m"):
        library_from_rows([{**GOOD, "size_class": "aircraft-large"}])


def test_judgement_sentence_uses_the_hierarchy() -> None:
    il76 = [_c("il-76md", 0.41), _c("a-50", 0.22), _c("il-78", 0.19), _c("c-17", 0.1)]
    dets = [
        _det(*il76),
        _det(*il76),
        _det(_c("b747-400", 0.72), _c("b777-300er", 0.2)),
        _det(_c("an-124", 0.4), _c("c-5m", 0.35), _c("b747-400", 0.2)),
        _det(_c("a320", 0.3), _c("c-5m", 0.3), _c("il-38", 0.2)),
        _det(_c("mi-26", 0.3), _c("ch-47", 0.45), category="helicopter"),
        Detection(OrientedBox(10, 10, 40, 30, 0), "aircraft", 0.9),  # no GSD: not identified, left out
    ]
    from sitewatch.identify.hierarchy import identification_sentence

    assert identification_sentence(dets) == (
        "One aircraft identified as B747-400, two large aircraft consistent with the Il-76 family, one heavy transport, "
        "one heavy-lift helicopter; one aircraft not identified beyond its category."
    )
    assert identification_sentence(dets[-1:]) is None


def test_calibrated_temperature_flattens_the_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.identify import candidates
    from sitewatch.identify.candidates import calibrated_temperature, rank_types

    lib = load_library()
    # The shipped temperature is whatever the last fit gave; the default's effect is checked at 1.5.
    monkeypatch.setattr(candidates, "_calibration", lambda: {"temperature": {"detector": {"aircraft": 1.5}}})
    assert calibrated_temperature("aircraft") == 1.5 and calibrated_temperature("no-such-category") == 1.0
    at_1 = rank_types(46.6, 50.5, 3.0, 3.0, "aircraft", lib, temperature=1.0)
    cal = rank_types(46.6, 50.5, 3.0, 3.0, "aircraft", lib)
    # same order without priors, a flatter top
    assert [s.type.id for s in cal.types] == [s.type.id for s in at_1.types]
    assert cal.types[0].probability < at_1.types[0].probability
    # the tempered posterior is exactly the softmax of log-likelihood / T + log prior
    t2 = rank_types(46.6, 50.5, 3.0, 3.0, "aircraft", lib, temperature=2.0)
    r = at_1.types[0].probability / at_1.types[1].probability
    assert t2.types[0].probability / t2.types[1].probability == pytest.approx(r**0.5)
