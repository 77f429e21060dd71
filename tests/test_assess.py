"""Indicators, convoy geometry, ACH weighing and the withdrawal scenario (synthetic passes, exact answers)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from importlib import resources
from types import SimpleNamespace

import numpy as np
import pytest
from shapely.geometry import box

from sitewatch.assess import IndicatorError, assess_site, extract_claims, load_indicators
from sitewatch.assess.convoy import find_convoys
from sitewatch.assess.estimative import estimative_term
from sitewatch.assess.hypotheses import SCORE_LLR, EvidenceItem, Hypothesis, weigh
from sitewatch.assess.indicators import Condition, evaluate
from sitewatch.assess.metrics import Context
from sitewatch.types import Candidate, Detection, OrientedBox, Pass

SITE = SimpleNamespace(name="hmeimim", title="Hmeimim Air Base", aliases=["Khmeimim"],
                       zones={"air-defence": box(35.90, 35.40, 35.91, 35.41)})  # fmt: skip
_next_id = iter(range(1, 100000))


def det(category: str, x: float, y: float, heading: float = 0.0, length: float = 20.0, width: float = 8.0,
        type_id: str | None = None, role: str = "", lonlat: tuple[float, float] | None = None) -> Detection:  # fmt: skip
    cands = (Candidate(type_id, type_id, role, 0.8),) if type_id else ()
    fp = None
    if lonlat:
        lon, lat = lonlat
        fp = ((lon, lat), (lon + 1e-5, lat), (lon + 1e-5, lat + 1e-5), (lon, lat + 1e-5))
    return Detection(OrientedBox.make(x, y, length, width, heading), category, 0.9, fp, candidates=cands, id=next(_next_id))


def make_pass(pid: int, day: int, dets: list[Detection], gsd: float = 0.5) -> Pass:
    return Pass("hmeimim", f"scene-{pid}.tif", datetime(2024, 12, day, 9, tzinfo=UTC), None, 1.0, gsd, "test", id=pid, detections=dets)


def fake_comparison(a: Pass, b: Pass, pct_unexplained: float = 1.0) -> SimpleNamespace:
    ids_b = {(d.category, round(d.box.cx), round(d.box.cy)) for d in b.detections}
    objs = []
    for d in a.detections:
        status = "remained" if (d.category, round(d.box.cx), round(d.box.cy)) in ids_b else "departed"
        objs.append(SimpleNamespace(status=status, category=d.category, zone=None, det_a=d, det_b=None))
    return SimpleNamespace(pass_a={"id": a.id}, pass_b={"id": b.id}, objects=objs,
                           pixel_change={"site": {"pct_unexplained": pct_unexplained}},
                           registration=SimpleNamespace(quality=0.9))  # fmt: skip


def withdrawal_passes() -> tuple[Pass, Pass]:
    before = [det("aircraft", 100 + 60 * i, 100) for i in range(22)]
    before += [det("aircraft", 100 + 120 * i, 400, length=90, width=100, type_id="il-76md", role="heavy transport") for i in range(2)]
    before += [det("helicopter", 100 + 50 * i, 700) for i in range(6)]
    # 18 aircraft and 5 helicopters leave; the Il-76s stay (loading).
    after = [det("aircraft", d.box.cx, d.box.cy, length=d.box.length, width=d.box.width,
                 type_id=d.best_type.type_id if d.best_type else None, role=d.best_type.role if d.best_type else "")
             for d in before[18:24]]  # fmt: skip
    after += [det("helicopter", 100, 700)]
    return make_pass(1, 5, before), make_pass(2, 17, after)


# ---- estimative language ---------------------------------------------------------------------
@pytest.mark.parametrize(("p", "term"), [(0.01, "almost no chance"), (0.05, "very unlikely"), (0.19, "very unlikely"),
                                         (0.2, "unlikely"), (0.45, "roughly even chance"), (0.55, "roughly even chance"),
                                         (0.56, "likely"), (0.8, "very likely"), (0.949, "very likely"), (0.95, "almost certain"),
                                         (1.0, "almost certain")])  # fmt: skip
def test_icd203_terms(p, term):
    assert estimative_term(p) == term


# ---- condition language and registry ---------------------------------------------------------
def test_condition_parses_filters_and_rejects_code():
    c = Condition.parse("count_change_pct[category=aircraft|helicopter, role=heavy transport] <= -30")
    assert (c.metric, c.op, c.threshold) == ("count_change_pct", "<=", -30.0)
    assert dict(c.filters) == {"category": "aircraft|helicopter", "role": "heavy transport"}
    for bad in ["__import__('os').system('x') > 1", "count > x", "nosuch_metric > 1", "count[category] > 1"]:
        with pytest.raises(IndicatorError):
            Condition.parse(bad)


def test_user_indicator_files_and_duplicate_names(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "indicators").mkdir(parents=True)
    monkeypatch.setenv("SITEWATCH_HOME", str(home))
    (home / "indicators" / "mine.yaml").write_text(
        "indicators:\n  - name: many-ships\n    when: ['count[category=ship] >= 3']\n    strength: 0.4\n")
    names = [i.name for i in load_indicators()]
    assert "many-ships" in names and "convoy" in names
    extra = tmp_path / "extra.yaml"
    extra.write_text("indicators:\n  - name: convoy\n    when: ['count > 1']\n")
    with pytest.raises(IndicatorError, match="'convoy' is defined twice"):
        load_indicators([extra])


# ---- convoy geometry -------------------------------------------------------------------------
def test_convoy_chain_found_along_any_direction():
    for angle in (0.0, 30.0, 90.0, 135.0):
        t = math.radians(angle)
        axis = np.array([math.sin(t), -math.cos(t)])
        xy = np.array([axis * 18.0 * i for i in range(6)]) + [500, 500]
        chains = find_convoys(xy, np.full(6, angle), gap_m=30, angle_deg=20, min_length=5)
        assert [sorted(c) for c in chains] == [list(range(6))], angle


def test_convoy_rejects_side_by_side_gaps_and_misaligned():
    xy = np.array([[18.0 * i, 0.0] for i in range(6)])
    # Parked side by side: headings across the row (row runs along x = 90 deg, vehicles point north).
    assert find_convoys(xy, np.zeros(6), min_length=2) == []
    # Nose to tail but with a 100 m gap in the middle: two chains of three.
    xy_gap = np.array([[18.0 * i + (100 if i >= 3 else 0), 0.0] for i in range(6)])
    assert sorted(len(c) for c in find_convoys(xy_gap, np.full(6, 90.0), min_length=2)) == [3, 3]
    # Headings scattered by 45 degrees: no links.
    assert find_convoys(xy, np.array([90, 135, 90, 45, 90, 135.0]), min_length=2) == []


def test_convoy_indicator_fires_with_detection_evidence():
    trucks = [det("large-vehicle", 200 + 36 * i, 300, heading=90, length=20, width=6) for i in range(7)]  # 18 m apart at 0.5 m
    noise = [det("small-vehicle", 900, 900 + 40 * i, heading=90, length=9, width=4) for i in range(3)]
    p = make_pass(1, 5, trucks + noise)
    ind = next(i for i in load_indicators() if i.name == "convoy")
    r = evaluate(ind, Context(SITE, [p]))
    assert r.state == "fired" and r.values["convoy_length"] == 7
    assert {f"det:{d.id}" for d in trucks} <= set(r.evidence)
    assert not {f"det:{d.id}" for d in noise} & set(r.evidence)


def test_zone_indicator_uses_footprints():
    inside = (35.905, 35.405)
    first = make_pass(1, 5, [det("large-vehicle", 10 * i, 0, lonlat=inside) for i in range(4)] + [det("aircraft", 0, 0, lonlat=(35.0, 35.0))])
    last = make_pass(2, 9, [det("aircraft", 0, 0, lonlat=(35.0, 35.0))])
    ind = next(i for i in load_indicators() if i.name == "air-defence-zone-emptied")
    assert evaluate(ind, Context(SITE, [first, last], [fake_comparison(first, last)])).state == "fired"
    assert evaluate(ind, Context(SITE, [first, first])).state == "not-fired"
    no_zones = SimpleNamespace(name="hmeimim", zones={})
    r = evaluate(ind, Context(no_zones, [first, last]))
    assert r.state == "not-assessable" and "no zone 'air-defence'" in r.reason
    # Both conditions lack the zone: the plain reason is said once; ``reason`` keeps the conditions.
    assert r.missing == ["site has no zone 'air-defence'"] and r.reason.count("count[zone=air-defence") == 2


# ---- ACH arithmetic --------------------------------------------------------------------------
def test_weigh_is_softmax_of_weighted_llrs():
    hyps = [Hypothesis("a", "a", {}, {}), Hypothesis("b", "b", {}, {})]
    ev = [EvidenceItem("indicator:x", "indicator", "x", 1.0, 1.0, {"a": "CC", "b": "I"}),
          EvidenceItem("claim:1", "claim", "y", 0.5, 0.6, {"a": "N", "b": "C"})]  # fmt: skip
    res = {r.name: r for r in weigh(hyps, ev)}
    sa, sb = SCORE_LLR["CC"], SCORE_LLR["I"] + 0.3 * SCORE_LLR["C"]
    assert res["a"].score == pytest.approx(sa) and res["b"].score == pytest.approx(sb)
    assert res["a"].probability == pytest.approx(math.exp(sa) / (math.exp(sa) + math.exp(sb)))
    assert res["b"].inconsistency == pytest.approx(1.0)


# ---- the withdrawal scenario -----------------------------------------------------------------
SCENARIO_PUBLISHED = datetime(2024, 12, 18, 12, tzinfo=UTC)


def scenario_claims():
    text = resources.files("sitewatch.assess").joinpath("data/scenario_report.txt").read_text("utf-8")
    return extract_claims(text, source="Sitewatch Wire", published=SCENARIO_PUBLISHED, reliability="C", sites=[SITE])


def test_withdrawal_scenario_most_likely_and_judgements_cite_real_evidence():
    a, b = withdrawal_passes()
    comp = fake_comparison(a, b)
    claims = scenario_claims()
    res = assess_site(SITE, [b, a], [comp], claims)
    assert res.most_likely.name == "withdrawal"
    assert res.most_likely.probability > 0.8
    fired = {r.name for r in res.fired}
    assert {"aircraft-count-drop", "helicopters-leaving", "heavy-airlift-present"} <= fired
    assert "site-unchanged" not in fired
    # Every key judgement names evidence, and every reference is a real pass, detection, comparison, claim or indicator.
    real = {f"pass:{p.id}" for p in (a, b)} | {f"det:{d.id}" for p in (a, b) for d in p.detections}
    real |= {"comparison:1-2"} | {c.ref for c in claims} | {r.ref for r in res.indicators}
    assert res.key_judgements
    for k in res.key_judgements:
        assert k["evidence"], k
        assert set(k["evidence"]) <= real, set(k["evidence"]) - real
        assert set(k["evidence"]) <= set(res.evidence)
    top = res.key_judgements[0]
    assert top["hypothesis"] == "withdrawal" and ("likely" in top["text"] or "certain" in top["text"])
    assert "confidence" not in top["text"]  # likelihood and confidence are never in one sentence
    assert res.confidence["level"] in ("moderate", "high")
    # The claim "over 20 jets have left since Dec. 10" is corroborated by the drop (24 -> 6 aircraft).
    verdicts = {c.text: ch.verdict for c in res.claims for ch in res.checks if ch.claim_id == c.id}
    assert verdicts["Over 20 jets have left the base since Dec. 10, the official said."] == "corroborated"
    assert any(v == "not-observable" for t, v in verdicts.items() if "routine rotation" in t)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["hypotheses"][0]["name"] == "withdrawal" and d["hypotheses"][0]["term"] in ("very likely", "almost certain")
    assert len(d["ach_matrix"]["rows"]) == len(res.fired) + sum(1 for c in claims if c.signal)


def test_unchanged_site_favours_no_significant_change():
    a, _ = withdrawal_passes()
    b = make_pass(2, 17, [det(d.category, d.box.cx, d.box.cy, length=d.box.length, width=d.box.width) for d in a.detections])
    res = assess_site(SITE, [a, b], [fake_comparison(a, b)], [])
    assert "site-unchanged" in {r.name for r in res.fired}
    assert res.most_likely.name == "no-significant-change"


def test_single_pass_says_what_cannot_be_assessed():
    a, _ = withdrawal_passes()
    res = assess_site(SITE, [a], [], [])
    states = {r.name: r.state for r in res.indicators}
    for name in ("aircraft-count-drop", "helicopters-leaving", "ships-departed", "site-unchanged"):
        assert states[name] == "not-assessable", name
    assert states["heavy-airlift-present"] == "fired"
    assert "cannot be assessed" in res.not_assessable[0]
    assert res.confidence["level"] == "low"


def test_two_empty_passes_are_not_called_unchanged():
    a, b = make_pass(1, 10, []), make_pass(2, 17, [])
    res = assess_site(SITE, [a, b], [fake_comparison(a, b)], [])
    states = {r.name: r.state for r in res.indicators}
    assert states["site-unchanged"] == "not-assessable"
    assert "site-unchanged" not in {r.name for r in res.fired}


def test_indicators_resting_on_weak_categories_lower_the_confidence():
    a, b = withdrawal_passes()
    base = assess_site(SITE, [a, b], [fake_comparison(a, b)], [], weak_categories={})
    weak = assess_site(SITE, [a, b], [fake_comparison(a, b)], [], weak_categories={"helicopter": "no held-out labels for m 1"})
    assert "helicopters-leaving" in {r.name for r in weak.fired}
    assert weak.confidence["points"] == base.confidence["points"] - 1
    assert weak.confidence["reasons"][-1] == ("helicopters-leaving rests on detections of categories the detector is weak on "
                                              "(helicopter: no held-out labels for m 1)")
    # In the ACH matrix that indicator counts as a source of unknown reliability (admiralty F, 0.5).
    rows = {r["ref"]: r for r in weak.to_dict()["ach_matrix"]["rows"]}
    assert rows["indicator:helicopters-leaving"]["reliability"] == 0.5
    assert rows["indicator:aircraft-count-drop"]["reliability"] == 1.0
    p_base = {h.name: h.probability for h in base.hypotheses}
    p_weak = {h.name: h.probability for h in weak.hypotheses}
    assert p_weak["withdrawal"] < p_base["withdrawal"] and weak.most_likely.name == "withdrawal"
    # Aircraft indicators are not touched by weak vehicle categories.
    other = assess_site(SITE, [a, b], [fake_comparison(a, b)], [], weak_categories={"ship": "x", "large-vehicle": "y"})
    assert other.confidence == base.confidence
    assert [h.probability for h in other.hypotheses] == [h.probability for h in base.hypotheses]


def test_shipped_model_names_its_weak_categories():
    from sitewatch.detect.reliability import model_metadata, weak_categories

    meta = model_metadata("sitewatch-det")
    text = f"sitewatch-det {meta['version']}"
    ev = json.loads(meta["evaluation"])
    weak = weak_categories([text, "sitewatch-det 0.0.1-other", "unknown-model 1"])
    expected = {c for c, r in ev["categories"].items() if not r["objects"] or r["ap50"] < 0.5 or r["objects"] < 20}
    assert set(weak) == expected
    # Measured for the shipped model (1.8.0): aircraft AP50 0.96, ships 0.84 (not weak; 0.40 with 1.2.0),
    # large vehicles 0.007, helicopters 0.93 on only the 5 held-out SIMD helicopters (weak: too few to vouch).
    assert "aircraft" not in weak and {"helicopter", "large-vehicle"} <= set(weak)
    heli = ev["categories"]["helicopter"]
    assert weak["helicopter"].startswith("no held-out labels" if not heli["objects"] else f"held-out AP50 {heli['ap50']:.2f}")
    assert all(why.endswith(f"for {text}") for why in weak.values())


def test_role_indicators_weigh_the_role_probability_not_the_best_type():
    # Each aircraft: A-50 (AEW) most probable at 0.5, but Il-76MD 0.2 + C-17 0.15 = 0.35 heavy transport.
    cands = (Candidate("a-50", "A-50", "AEW", 0.5), Candidate("il-76md", "Il-76MD", "heavy transport", 0.2),
             Candidate("c-17", "C-17", "heavy transport", 0.15), Candidate("unknown", "unknown/other", "unknown/other", 0.15))  # fmt: skip

    def ac(i: int) -> Detection:
        return Detection(OrientedBox.make(100 + 80 * i, 100, 90, 100, 0), "aircraft", 0.9, candidates=cands, id=next(_next_id))

    three, two = make_pass(1, 5, [ac(i) for i in range(3)]), make_pass(2, 17, [ac(i) for i in range(2)])
    res = assess_site(SITE, [three], [], [])
    hal = next(r for r in res.indicators if r.name == "heavy-airlift-present")
    assert hal.state == "fired" and hal.values["count"] == pytest.approx(1.05)
    assert "1.1 heavy transport aircraft expected" in hal.sentence
    assert all(f"det:{d.id}" in hal.evidence for d in three.detections)
    # the judgements say what the aircraft are at the level known: A-50 0.5 + Il-76MD 0.2 = 0.7, the family
    said = next(j for j in res.key_judgements if j["text"].startswith("Identified in the latest pass"))
    assert said["text"].endswith("at least 70% probable: Three large aircraft consistent with the Il-76 family.")
    assert said["evidence"] == [f"pass:{three.id}", *(f"det:{d.id}" for d in three.detections)]
    res = assess_site(SITE, [two], [], [])
    assert next(r for r in res.indicators if r.name == "heavy-airlift-present").state == "not-fired"  # 0.70 < 1
    # the change between passes is in expected numbers too: 0.70 - 1.05
    from sitewatch.assess.metrics import get_metric

    mv = get_metric("count_change")(Context(SITE, [three, two]), {"category": "aircraft", "role": "heavy transport"})
    assert mv.value == pytest.approx(-0.35)


def test_key_judgements_name_the_site_by_its_title() -> None:
    from sitewatch.assess.assessment import _display_name

    hmeimim = SimpleNamespace(name="hmeimim", title="Hmeimim (Khmeimim) Air Base")
    assert _display_name(hmeimim, "hmeimim") == "Hmeimim (Khmeimim) Air Base"  # a parenthesis inside stays
    noted = SimpleNamespace(name="airfield-p", title="Airfield P (real sample pair; name invented)")
    assert _display_name(noted, "airfield-p") == "Airfield P"  # a closing note goes
    assert _display_name("tartus", "tartus") == "tartus"  # a bare name: its slug
