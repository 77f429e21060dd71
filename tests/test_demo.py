"""sitewatch demo: SIMULATED Hmeimim (truth detector) and the real Pléiades pair (labels; the shipped detector, about a minute)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner

import sitewatch.pipeline
from quality_support import card_row, shipped_evaluation, wilson_interval
from sitewatch import demo
from sitewatch.cli.main import cli
from sitewatch.demo import SIM_SCENARIO, run_demo
from sitewatch.demo.steps import step_export, step_imagery, step_inventory, step_scan, step_summary
from sitewatch.sites import get_site
from test_scan import FakeDetector
from test_scenario import LabelDetector


def _truth_detector(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Make the demo detect exactly the simulated objects (the detector is not what is tested here)."""
    from sitewatch.imagery import simulate

    made: dict = {}
    real = simulate.simulate_site

    def spy(*a, **kw):
        made["sc"] = real(*a, **kw)
        return made["sc"]

    class Truth(FakeDetector):
        def detect(self, scene, **kw):
            (p,) = [p for p in made["sc"].passes if str(p.path) == str(scene.path)]
            self.boxes = [(o.box.cx, o.box.cy, o.box.length, o.box.width, o.box.heading_deg, o.category) for o in p.objects]
            return super().detect(scene, **kw)

    monkeypatch.setattr(simulate, "simulate_site", spy)
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: Truth([]))
    return made


def test_simulated_demo_on_hmeimim_zones_ends_with_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _truth_detector(monkeypatch)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    # It prints the key judgements, the confidence, and ends with the folder and its files.
    assert "Key judgements" in r.output and "It is " in r.output and "Confidence:" in r.output
    tail = r.output[r.output.index(f"outputs in {out}/") :]
    assert all(name in tail for name in ("report.html", "report.pdf", "report.json", "summary.json"))
    # ... and its last line is the command that serves the demo store
    assert r.output.strip().splitlines()[-1] == f"sitewatch serve --store sqlite:///{(out / 'demo-store.db').resolve()}"
    summary = json.loads((out / "summary.json").read_text())
    # The bundled Hmeimim site, SIMULATED passes, objects drawn inside the watchlist's zones.
    site = get_site("hmeimim")
    assert summary["site"] == "hmeimim" and summary["SIMULATED"] is True and all(p["simulated"] for p in summary["passes"])
    for p in made["sc"].passes:
        zones = [site.zone_at(o.lon, o.lat) for o in p.objects]
        assert all(zones) and all(shapely.contains_xy(site.aoi, o.lon, o.lat) for o in p.objects)
        assert {site.zone_at(o.lon, o.lat) for o in p.objects if o.category == "aircraft"} <= {"apron-west", "apron-east"}
        assert {site.zone_at(o.lon, o.lat) for o in p.objects if o.category == "helicopter"} == {"helicopter-area"}
    n1 = SIM_SCENARIO["n_aircraft"]
    n2 = n1 - SIM_SCENARIO["departed"] + SIM_SCENARIO["arrived"]
    assert [t["detected_aircraft"] for t in summary["truth"]] == [t["true_aircraft"] for t in summary["truth"]] == [n1, n2]
    assert summary["inventory"]["passes"][1]["deltas"]["aircraft"] == n2 - n1
    aircraft = summary["comparison"]["counts"]["aircraft"]
    assert aircraft["departed"] == SIM_SCENARIO["departed"] and aircraft["arrived"] == SIM_SCENARIO["arrived"]
    # The fictional report became claims in the store; the assessment favours withdrawal and the
    # "at least ten aircraft have left" claim is corroborated.
    assert len(summary["claims"]) == 4
    assess = summary["assessment"]
    assert assess["most_likely"] == "withdrawal" and "aircraft-count-drop" in assess["fired"]
    assert list(assess["claim_checks"].values()).count("corroborated") >= 1
    # The demo ends with the report (HTML, PDF, JSON twin) and the exports.
    for name in ("report.html", "report.json", "report.pdf", "hmeimim_simulated_report.txt", "demo-store.db"):
        assert (out / name).is_file(), name
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    twin = json.loads((out / "report.json").read_text())
    assert twin["simulated"] is True and twin["assessment"]["hypotheses"][0]["name"] == "withdrawal"
    assert "SIMULATED" in (out / "report.html").read_text()
    gj = gpd.read_file(out / "hmeimim-detections.geojson")
    assert len(gj) == sum(p["detections"] for p in summary["passes"])



def test_demo_library_is_silent_tells_its_observer_and_returns_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """run_demo prints nothing: it reports to its observer and returns what it wrote (a few steps, for speed)."""
    _truth_detector(monkeypatch)
    events: list[tuple] = []

    class Recorder(demo.DemoObserver):
        def step_started(self, name, title):
            events.append(("started", name))

        def step_finished(self, name, state):
            events.append(("finished", name))

        def imagery_chosen(self, state):
            events.append(("imagery", state.simulated, state.site.name, len(state.scenes)))

        def pass_scanned(self, scanned, notes):
            events.append(("scanned", scanned.id, bool(notes)))

    out = tmp_path / "out"
    result = run_demo(out, steps=[step_imagery, step_scan, step_inventory, step_summary], observer=Recorder())
    assert capsys.readouterr() == ("", "")
    # the simulated imagery is announced before it is drawn; each pass as it is stored
    assert events == [
        ("started", "imagery"), ("imagery", True, "hmeimim", 0), ("finished", "imagery"),
        ("started", "scan"), ("scanned", 1, True), ("scanned", 2, True), ("finished", "scan"),
        ("started", "inventory"), ("finished", "inventory"), ("started", "summary"), ("finished", "summary"),
    ]  # fmt: skip
    n1 = SIM_SCENARIO["n_aircraft"]
    n2 = n1 - SIM_SCENARIO["departed"] + SIM_SCENARIO["arrived"]
    assert result.site == "hmeimim" and result.simulated and result.passes == (1, 2)
    assert result.detected_aircraft == result.true_aircraft == (n1, n2)
    assert result.store_path == out / "demo-store.db" and result.store_url == f"sqlite:///{out / 'demo-store.db'}"
    assert result.verdict is None and result.report == () and result.exports == ()
    assert result.summary_json == out / "summary.json" and json.loads(result.summary_json.read_text())["site"] == "hmeimim"
    assert [p.name for p in result.outputs] == ["demo-store.db", "imagery", "summary.json"]
    assert set(result.timings_s) == {"imagery", "scan", "inventory", "summary"}


@pytest.mark.slow
def test_real_pair_demo_with_labels(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: LabelDetector())
    result = run_demo(tmp_path / "out", data_dir, steps=[s for s in demo.STEPS if s is not step_export])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["SIMULATED"] is False and summary["site"] == "airfield-p"
    assert [t["true_aircraft"] for t in summary["truth"]] == [20, 5]  # pairs.csv: n_aircraft_a, n_aircraft_b
    assert [t["detected_aircraft"] for t in summary["truth"]] == [20, 5]
    assert all(p["crs"] is None and p["gsd_m"] == 0.5 for p in summary["passes"])
    assert summary["assessment"]["most_likely"] == "withdrawal" == result.verdict
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "report.json").is_file()
    assert result.exports == () and result.detected_aircraft == result.true_aircraft == (20, 5)


def _assert_no_type_below_threshold(out: Path, site: str) -> None:
    """Inventory rows (report and ``inventory --by type``) name a type only where its calibrated probability reaches the threshold."""
    from sitewatch.identify import IdentifySettings, label_detection
    from sitewatch.pipeline import inventory
    from sitewatch.store import open_store

    threshold = IdentifySettings().label_threshold
    with open_store(f"sqlite:///{out / 'demo-store.db'}") as store:
        passes = store.list_passes(site)
    dets = [d for p in passes for d in p.detections]
    assert any(d.candidates for d in dets)
    labels = {d.id: label_detection(d) for d in dets}
    type_names = {c.name for d in dets for c in d.candidates if c.type_id != "unknown"}
    named = set()
    for d in dets:
        lab = labels[d.id]
        if lab.level == "type":
            assert lab.probability >= threshold and lab.candidates[0].probability >= threshold
            named.add(lab.text)
    twin = json.loads((out / "report.json").read_text())
    rows = [r for r in twin["inventory"] if r["type_name"] in type_names]
    assert all(r["level"] == "type" and r["type_name"] in named for r in rows), rows
    groups = inventory(passes, "type")["groups"]
    assert {g for g in groups if g in type_names} <= named


def test_real_pair_demo_with_shipped_detector(tmp_path: Path, data_dir: Path) -> None:
    """The shipped detector's aircraft counts on the real pair lie within what its card allows, and the verdict holds.

    Allowed range for ``n`` labelled aircraft: found ``n * R`` at least, with ``R`` the lower end of
    the 99 % Wilson interval of the card's airbus-pleiades recall over ``n``; at most the upper end
    over the lower end of the precision interval (detections include false alarms). For 20 and 5
    aircraft that is 13-31 and 1-14 with the 1.2.0 card.
    """
    _, ev = shipped_evaluation()
    card = card_row(ev, "airbus-pleiades", "aircraft")
    run_demo(tmp_path / "out", data_dir)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [t["true_aircraft"] for t in summary["truth"]] == [20, 5]
    found = [t["detected_aircraft"] for t in summary["truth"]]
    for n, got in zip((20, 5), found, strict=True):
        lo = math.floor(n * wilson_interval(card["recall"], n)[0])
        hi = math.ceil(n * wilson_interval(card["recall"], n)[1] / wilson_interval(card["precision"], n)[0])
        assert lo <= got <= hi, (n, got, lo, hi, card)
    print("shipped detector on the demo pair:", found)  # shown with -s
    assert summary["assessment"]["most_likely"] == "withdrawal"
    assert "aircraft-count-drop" in summary["assessment"]["fired"]
    assert (tmp_path / "out" / "report.html").is_file()
    _assert_no_type_below_threshold(tmp_path / "out", "airfield-p")


@pytest.mark.slow
def test_watch_demo_alerts_on_the_drop_and_the_return(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.imagery import simulate

    made: list = []
    real = simulate.simulate_site

    def spy(*a, **kw):
        made.append(real(*a, **kw))
        return made[-1]

    class Truth(FakeDetector):
        def detect(self, scene, **kw):  # the objects drawn in the pass acquired at the scene's time
            arrived = [*made[0].passes, made[1].passes[1]]  # the second scenario's first pass never arrives
            (p,) = [p for p in arrived if p.acquired == scene.acquired]
            self.boxes = [(o.box.cx, o.box.cy, o.box.length, o.box.width, o.box.heading_deg, o.category) for o in p.objects]
            return super().detect(scene, **kw)

    monkeypatch.setattr(simulate, "simulate_site", spy)
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: Truth([]))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["demo", "--watch", "--out", str(out)])
    assert r.exit_code == 0, r.output
    n1 = SIM_SCENARIO["n_aircraft"]
    counts = [n1, n1 - SIM_SCENARIO["departed"] + SIM_SCENARIO["arrived"], n1 - demo.WATCH_RETURN["departed"] + demo.WATCH_RETURN["arrived"]]
    from sitewatch.store import open_store

    with open_store(f"sqlite:///{out / 'watch-store.db'}") as store:
        assert [p.counts()["aircraft"] for p in store.list_passes("hmeimim")] == counts == [15, 5, 21]
        from sitewatch.store.watchstate import WatchLedger

        alerts = {(a.item_id, a.kind, a.subject) for a in WatchLedger(store).alerts("hmeimim")}
    assert ("hmeimim-20240304.tif", "indicator-fired", "aircraft-count-drop") in alerts
    assert ("hmeimim-20240307.tif", "indicator-cleared", "aircraft-count-drop") in alerts
    assert "ALERT hmeimim: Aircraft count dropped sharply" in " ".join(r.output.split())
    assert (out / "alerts.atom").read_text().count("<entry>") == len(alerts)
