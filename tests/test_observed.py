"""No judgement from pixels that are not there: valid-pixel coverage, "not observed" comparisons and indicators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box

from _rasters import write_raster
from sitewatch.imagery import open_scene
from sitewatch.imagery.simulate import simulate_site
from sitewatch.imagery.validity import observe, observed_mask
from test_scan import FakeSite
from test_scan_cli import run, use_simulation_truth

AOI = box(35.9425, 35.4012, 35.9455, 35.4035)


def test_observed_mask_blanks_black_and_saturated_blocks_exactly() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(20, 230, (32, 48, 3), dtype=np.uint8)
    rgb[0:8, 0:8] = 0  # one all-black block
    rgb[8:16, 16:24] = 255  # one saturated block
    rgb[16:24, 0:8] = 0
    rgb[20, 3] = (40, 40, 40)  # a black block with one textured pixel is content
    valid = np.ones((32, 48), bool)
    valid[24:, 40:] = False  # the file's own nodata
    got = observed_mask(rgb, valid, block_px=8)
    want = valid.copy()
    want[0:8, 0:8] = False
    want[8:16, 16:24] = False
    assert np.array_equal(got, want)
    assert got.sum() == 32 * 48 - 3 * 64


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two SIMULATED passes of a small site, a detector that returns each file's truth, the site patched in."""
    sc = simulate_site(tmp_path / "img", AOI, site="simbase", extent_m=400, n_aircraft=6, n_helicopters=0, n_vehicles=0,
                       departed=3, arrived=2)  # fmt: skip
    return sc, use_simulation_truth(sc, monkeypatch)


def _masked_copy(src: Path, dst: Path, blank_cols: slice) -> Path:
    """``src`` with the given columns set to nodata (0)."""
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
    data[:, :, blank_cols] = 0
    profile.update(nodata=0)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def _aoi_share_east_of(p_transform: Affine, crs: str, col: float) -> float:
    """Share of the AOI east of pixel column ``col`` of a pass (its UTM grid)."""
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform
    aoi_utm = shapely.ops.transform(to_utm, AOI)
    x_edge = (p_transform * (col, 0))[0]
    east = aoi_utm.intersection(box(x_edge, -1e9, 1e9, 1e9))
    return east.area / aoi_utm.area


def test_blank_pass_is_not_observed_and_draws_no_judgement(sim, tmp_path: Path, capsys) -> None:
    sc, truth = sim
    p1 = str(sc.passes[0].path)
    blank = _masked_copy(sc.passes[1].path, tmp_path / "blank.tif", slice(None))
    truth[str(blank)] = []
    assert run(["scan", p1, "--site", "simbase", "--acquired", "2024-03-01"], capsys)[0] == 0
    code, out, err = run(["scan", str(blank), "--site", "simbase", "--acquired", "2024-04-01", "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)[0]
    assert got["observed_coverage"] == 0.0 and got["aoi_coverage"] > 0.99
    assert "observe 0.0% of the AOI" in err
    code, out, _ = run(["passes", "simbase", "--json"], capsys)
    assert [p["observed_coverage"] for p in json.loads(out)] == [1.0, 0.0]
    code, out, err = run(["compare", "simbase", "--json"], capsys)
    assert code == 0, err
    comp = json.loads(out)
    assert comp["sentence"].startswith("Not observed: pass B observed 0 % of the site")
    assert "not observed" in comp["not_compared"]
    assert all(v["departed"] == 0 and v["a"] == 0 for v in comp["counts"].values())
    n_a = sum(1 for o in sc.passes[0].objects if AOI.contains(shapely.Point(o.lon, o.lat)))
    assert len(comp["unobserved"]) == n_a > 0
    code, out, err = run(["assess", "simbase", "--json"], capsys)
    assert code == 0, err
    a = json.loads(out)
    texts = " ".join(k["text"] for k in a["key_judgements"])
    assert "withdraw" not in texts and "-100 %" not in texts and "changed by" not in texts
    drop = next(r for r in a["indicators"] if r["name"] == "aircraft-count-drop")
    assert drop["state"] == "not-assessable" and "not observed" in drop["reason"]
    assert not [r for r in a["indicators"] if r["state"] == "fired"]


def test_half_nodata_pass_counts_departures_only_where_both_observed(sim, tmp_path: Path, capsys) -> None:
    sc, truth = sim
    a, b = sc.passes
    with rasterio.open(b.path) as ds:
        width, tb = ds.width, ds.transform
    half = _masked_copy(b.path, tmp_path / "half.tif", slice(0, width // 2))
    truth[str(half)] = [t for t in truth[str(b.path)] if t[0] >= width // 2]
    assert run(["scan", str(a.path), "--site", "simbase"], capsys)[0] == 0
    code, out, err = run(["scan", str(half), "--site", "simbase", "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)[0]
    assert got["observed_coverage"] == pytest.approx(_aoi_share_east_of(tb, b.crs, width // 2), abs=0.02)
    assert 0.2 < got["observed_coverage"] < 0.8
    code, out, err = run(["compare", "simbase", "--json"], capsys)
    assert code == 0, err
    comp = json.loads(out)

    def col_b(o) -> float:  # ground position in pass B's pixel columns
        return (~tb * (o.easting, o.northing))[0]

    in_aoi = [o for o in a.objects if AOI.contains(shapely.Point(o.lon, o.lat))]
    ids_b = {o.id for o in b.objects}
    assert all(abs(col_b(o) - width // 2) > 8 for o in in_aoi)  # no object straddles the nodata edge
    departed = [o for o in in_aoi if o.id not in ids_b and col_b(o) >= width // 2]
    hidden = [o for o in in_aoi if col_b(o) < width // 2]
    assert departed and hidden  # the scenario has both kinds
    assert comp["counts"]["aircraft"]["departed"] == len(departed)
    assert len([u for u in comp["unobserved"] if u["det_a"]]) == len(hidden)
    assert comp["counts"]["aircraft"]["a"] == len(in_aoi) - len(hidden)
    assert comp["observed"]["both"] == pytest.approx(got["observed_coverage"], abs=0.02)
    assert any("observed by valid pixels in both passes" in w for w in comp["warnings"])
    # assess counts only on the jointly observed part: the drop is the real departures minus the real arrivals there
    code, out, err = run(["assess", "simbase", "--json"], capsys)
    assert code == 0, err
    drop = next(r for r in json.loads(out)["indicators"] if r["name"] == "aircraft-count-drop")
    a_east = [o for o in in_aoi if col_b(o) >= width // 2]
    b_east = [o for o in b.objects if AOI.contains(shapely.Point(o.lon, o.lat)) and o.box.cx >= width // 2]
    assert drop["values"]["count_change"] == len(b_east) - len(a_east)
    assert len(b_east) - len(a_east) != len(b_east) - len(in_aoi)  # counting the unobserved half would differ


def test_observe_real_image_full_blank_and_half(data_dir: Path, tmp_path: Path) -> None:
    src = next(iter(sorted((data_dir / "airbus-pleiades" / "images").glob("*.jpg"))))
    with rasterio.open(src) as ds:
        rgb = ds.read(window=((0, 512), (0, 512)))
    t = Affine(0.5, 0, 767000.0, 0, -0.5, 3922000.0)
    site = FakeSite("real", shapely.ops.transform(Transformer.from_crs("EPSG:32636", "EPSG:4326", always_xy=True).transform,
                                                  box(767000.0 + 10, 3922000.0 - 246, 767000.0 + 246, 3922000.0 - 10)))  # fmt: skip
    full = write_raster(tmp_path / "full.tif", rgb, crs="EPSG:32636", transform=t)
    blank = write_raster(tmp_path / "blank.tif", np.zeros_like(rgb), crs="EPSG:32636", transform=t)
    halfdata = rgb.copy()
    halfdata[:, :, :256] = 0
    half = write_raster(tmp_path / "half.tif", halfdata, crs="EPSG:32636", transform=t, nodata=0)
    cov = {}
    for name, path in (("full", full), ("blank", blank), ("half", half)):
        with open_scene(path) as scene:
            cov[name] = observe(scene, site.aoi)
    assert cov["full"].coverage == pytest.approx(1.0, abs=0.01)
    assert cov["blank"].coverage == 0.0 and shapely.from_wkt(cov["blank"].area_wkt).is_empty
    # the AOI spans x 10..246 m = px 20..492; the valid half starts at px 256
    assert cov["half"].coverage == pytest.approx((492 - 256) / (492 - 20), abs=0.01)
