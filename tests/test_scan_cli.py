"""sitewatch scan / inventory / passes / export on SIMULATED passes with a detector that returns the truth."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from PIL import Image
from shapely.geometry import Point, box

import sitewatch.pipeline
import sitewatch.sites
from sitewatch.cli.main import main
from sitewatch.errors import SiteError
from sitewatch.imagery.simulate import simulate_site
from sitewatch.types import CATEGORIES
from test_scan import FakeDetector, FakeSite

AOI = box(35.9425, 35.4012, 35.9455, 35.4035)


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def use_simulation_truth(sc, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple]]:  # noqa: ANN001 - a SimulatedSite
    """Make the CLI see site 'simbase' (the AOI) and detect exactly the simulated objects of ``sc``;
    returns the truth per scene path."""
    truth = {str(p.path): [(o.box.cx, o.box.cy, o.box.length, o.box.width, o.box.heading_deg, o.category) for o in p.objects] for p in sc.passes}

    class TruthDetector(FakeDetector):
        def detect(self, scene, **kw):
            self.boxes = truth[str(scene.path)]
            return super().detect(scene, **kw)

    def get_site(name: str) -> FakeSite:
        if name != "simbase":
            raise SiteError(f"unknown site '{name}'; known: simbase")
        return FakeSite("simbase", AOI)

    monkeypatch.setattr(sitewatch.sites, "get_site", get_site, raising=False)
    monkeypatch.setattr(sitewatch.pipeline, "load_default_detector", lambda model=None: TruthDetector([]))
    return truth


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sc = simulate_site(tmp_path / "img", AOI, site="simbase", extent_m=400, n_aircraft=5, n_helicopters=1, n_vehicles=2, departed=3, arrived=1)
    use_simulation_truth(sc, monkeypatch)
    return sc


def test_scan_inventory_passes_export(scenario, tmp_path: Path, capsys) -> None:
    p1, p2 = (str(p.path) for p in scenario.passes)
    code, out, err = run(["scan", p1, p2, "--site", "simbase", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert [r["simulated"] for r in res] == [True, True]
    inside = [[o for o in p.objects if AOI.contains(Point(o.lon, o.lat))] for p in scenario.passes]
    expected = [{c: sum(o.category == c for o in objs) for c in CATEGORIES} for objs in inside]
    assert [r["counts"] for r in res] == expected
    assert 0 < sum(map(len, inside)) < sum(len(p.objects) for p in scenario.passes)  # some objects lie outside the AOI
    code, out, _ = run(["inventory", "simbase", "--json"], capsys)
    inv = json.loads(out)
    assert [p["counts"]["aircraft"] for p in inv["passes"]] == [5, 3]
    assert inv["passes"][1]["deltas"]["aircraft"] == -2 and inv["passes"][0]["deltas"]["aircraft"] is None
    code, out, _ = run(["inventory", "simbase"], capsys)
    assert code == 0 and "SIMULATED" in out and "(-2)" in out
    code, out, _ = run(["passes", "simbase"], capsys)
    assert code == 0 and out.count("SIMULATED") >= 2
    code, out, err = run(["export", "simbase", "--format", "geojson", "-o", str(tmp_path / "x.geojson")], capsys)
    assert code == 0, err
    got = gpd.read_file(tmp_path / "x.geojson")
    assert len(got) == sum(map(len, inside))
    # each exported footprint centre is within 0.25 m of the simulated object's ground position
    for objs in inside:
        for o in objs:
            d = shapely.distance(shapely.centroid(got.geometry.values), Point(o.lon, o.lat)).min()
            assert d < 3e-6  # degrees: ~0.3 m
    # rescanning a scene replaces its pass
    code, out, _ = run(["scan", p1, "--site", "simbase", "--json"], capsys)
    code, out, _ = run(["passes", "simbase", "--json"], capsys)
    assert len(json.loads(out)) == 2


def _passes_json(capsys) -> str:
    return run(["passes", "simbase", "--json"], capsys)[1]


def test_bad_input_is_one_line_and_store_unchanged(scenario, tmp_path: Path, capsys) -> None:
    p1 = str(scenario.passes[0].path)
    assert run(["scan", p1, "--site", "simbase"], capsys)[0] == 0
    before = _passes_json(capsys)
    shot = tmp_path / "shot.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(shot)
    far = tmp_path / "far"
    far_sc = simulate_site(far, box(36.5, 35.0, 36.501, 35.001), extent_m=100, n_aircraft=0, n_helicopters=0, n_vehicles=0, departed=0, arrived=0)
    cases = [
        (["scan", p1, "--site", "nowhere"], "unknown site 'nowhere'"),
        (["scan", str(far_sc.passes[0].path), "--site", "simbase"], "covers 0.00% of the AOI of site 'simbase'"),
        (["scan", str(shot), "--site", "simbase"], "no CRS and no GSD: pass --gsd"),
        (["scan", p1, "--site", "simbase", "--acquired", "yesterday-ish 99"], ""),
        (["scan", p1, "--site", "simbase", "--store", "postgresql://x@127.0.0.1:1/none"], "cannot open"),
        (["scan", "missing.tif", "--site", "simbase"], "missing.tif"),
        (["inventory", "nosite"], "no passes of site 'nosite'"),
    ]
    for argv, msg in cases:
        code, out, err = run(argv, capsys)
        assert code == 2, (argv, code, err)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(("error:", "Error:")), (argv, err)
        assert msg in err.replace("\n", " "), (argv, err)
        assert "Traceback" not in err
    assert _passes_json(capsys) == before
