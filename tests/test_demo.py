"""sitewatch demo: SIMULATED (fast, truth detector) and a real Pléiades pair (slow, real detector)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest

import sitewatch.pipeline
from sitewatch.cli.demo import run_demo
from test_scan import FakeDetector


def test_simulated_demo_writes_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.imagery import simulate

    made = {}
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
    monkeypatch.setattr("sitewatch.cli.demo._SIM_EXTENT_M", 700.0)  # a smaller scene keeps the test fast
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: Truth([]))
    st = run_demo(tmp_path / "out")
    st.store.close()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["SIMULATED"] is True and all(p["simulated"] for p in summary["passes"])
    assert [t["detected_aircraft"] for t in summary["truth"]] == [t["true_aircraft"] for t in summary["truth"]] == [12, 9]
    assert summary["inventory"]["passes"][1]["deltas"]["aircraft"] == -3
    assert (tmp_path / "out" / "demo-store.db").is_file()
    gj = gpd.read_file(tmp_path / "out" / "hmeimim-sim-detections.geojson")
    assert len(gj) == sum(p["detections"] for p in summary["passes"])
    assert gpd.read_parquet(tmp_path / "out" / "hmeimim-sim-detections.parquet").shape[0] == len(gj)


@pytest.mark.slow
def test_real_pair_demo(tmp_path: Path, data_dir: Path) -> None:
    st = run_demo(tmp_path / "out", data_dir)
    st.store.close()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["SIMULATED"] is False
    truth = summary["truth"]
    assert abs(truth[0]["true_aircraft"] - truth[1]["true_aircraft"]) >= 10  # the pair with the largest change
    assert all(p["crs"] is None and p["gsd_m"] == 0.5 for p in summary["passes"])
