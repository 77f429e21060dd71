import json
import os
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from _rasters import write_raster
from sitewatch.errors import SiteError
from sitewatch.imagery import open_scene
from sitewatch.sites import (
    Site,
    add_site,
    bundled_sites,
    get_site,
    import_sites,
    list_sites,
    lookup_key,
    remove_site,
    sites_from_geojson,
    sites_to_geojson,
    user_watchlist_path,
)
from sitewatch.sites.site import area_km2


def _site(name: str = "test-field", **kw: object) -> Site:
    args: dict = dict(name=name, title="Test Field", kind="airbase", country="XX", aoi=box(10.0, 50.0, 10.02, 50.01),
                      aliases=["Tëst Fïeld Alpha"], zones={"apron": box(10.001, 50.001, 10.005, 50.004)},
                      priors={"operators": ["XX"], "types": {"c-17": 2.0}}, notes="synthetic", sources=["unit test"])
    args.update(kw)
    return Site(**args)


def test_bundled_watchlist_is_valid_and_round_trips() -> None:
    sites = bundled_sites()
    assert len(sites) >= 8
    for s in sites:
        assert Site.from_geojson(json.loads(json.dumps(s.to_geojson()))) == s
        assert s.sources and "approximate" in s.notes
        assert 0.5 < area_km2(s.aoi) < 100
    data = json.loads((Path(__file__).parents[1] / "src/sitewatch/sites/data/watchlist.geojson").read_text())
    assert sites_to_geojson(sites, name=data["name"], note=data["note"]) == data


@pytest.mark.parametrize(
    ("query", "lat", "lon"),
    [("Khmeimim", 35.401, 35.949), ("HMEIMIM", 35.401, 35.949), ("Humaymim", 35.401, 35.949),
     ("Tartous", 34.895, 35.870), ("tartus", 34.895, 35.870), ("Engels-2", 51.48, 46.2), ("saki", 45.09, 33.6)],
)
def test_key_sites_by_alias_contain_reference_point(query: str, lat: float, lon: float) -> None:
    site = get_site(query)
    assert site.aoi.contains(Point(lon, lat))


def test_hmeimim_zones() -> None:
    site = get_site("Hmeimim")
    assert {"runway", "apron-west", "apron-east", "helicopter-area"} <= set(site.zones)
    rwy = site.zones["runway"]
    xs, ys = rwy.exterior.xy
    # About 2.8 km long, close to north-south.
    assert 0.024 < max(ys) - min(ys) < 0.027
    assert site.zone_at(35.9486, 35.4011) == "runway"
    assert set(get_site("tartus").zones) == {"harbour", "piers", "offshore-anchorage"}


def test_lookup_is_accent_and_case_insensitive() -> None:
    assert lookup_key("Ḫmeimim  Air-Base") == "hmeimimairbase"
    add_site(_site())
    assert get_site("test field alpha").name == "test-field"
    assert get_site("TEST-FIELD").name == "test-field"


def test_unknown_site_lists_close_matches() -> None:
    with pytest.raises(SiteError, match=r"unknown site 'hmeimin'; did you mean: hmeimim\?; known sites: hmeimim, tartus") as e:
        get_site("hmeimin")
    assert "\n" not in str(e.value)
    with pytest.raises(SiteError, match=r"unknown site 'zzzz'; known sites: "):
        get_site("zzzz")


def test_validation_errors() -> None:
    with pytest.raises(SiteError, match="lower-case letters"):
        _site(name="Bad Name")
    with pytest.raises(SiteError, match="unknown kind 'castle'"):
        _site(kind="castle")
    bowtie = box(0, 0, 1, 1).boundary  # not a polygon
    with pytest.raises(SiteError, match="expected a Polygon, got LineString"):
        _site(aoi=bowtie)
    from shapely.geometry import Polygon

    with pytest.raises(SiteError, match="invalid polygon"):
        _site(aoi=Polygon([(10, 50), (10.01, 50.01), (10.01, 50), (10, 50.01)]))
    with pytest.raises(SiteError, match=r"zone 'far': 100% of it lies outside the AOI"):
        _site(zones={"far": box(11, 51, 11.01, 51.01)})
    with pytest.raises(SiteError, match="not WGS84"):
        _site(aoi=box(500000, 4000000, 501000, 4001000))
    with pytest.raises(SiteError, match="too large"):
        _site(aoi=box(0, 0, 5, 5), zones={})


def test_user_watchlist_add_replace_remove() -> None:
    site = _site()
    add_site(site)
    path = user_watchlist_path()
    assert path == Path(os.environ["SITEWATCH_HOME"]) / "sites.geojson"
    assert get_site("test-field") == site
    assert [s.name for s in list_sites()][-1] == "test-field"
    with pytest.raises(SiteError, match="already exists"):
        add_site(site)
    before = path.read_bytes()
    with pytest.raises(SiteError, match="alias 'Khmeimim' already refers to site 'hmeimim'"):
        add_site(_site("other", aliases=["Khmeimim"]))
    assert path.read_bytes() == before  # nothing written on error
    add_site(_site(notes="second look"), replace=True)
    assert get_site("test-field").notes == "second look"
    # A user site may replace a bundled one in place.
    hm = get_site("hmeimim")
    add_site(Site(**{**hm.__dict__, "notes": "redrawn"}), replace=True)
    assert list_sites()[0].notes == "redrawn"
    remove_site("hmeimim")
    assert get_site("hmeimim").notes == hm.notes
    with pytest.raises(SiteError, match="bundled sites cannot be removed"):
        remove_site("tartus")
    assert not list(path.parent.glob(".sites-*"))  # no temporary files left


def test_import_sites_is_all_or_nothing(tmp_path: Path) -> None:
    good = _site("alpha").to_features() + _site("bravo", aliases=["B"]).to_features()
    (tmp_path / "two.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": good}))
    assert [s.name for s in import_sites(tmp_path / "two.geojson")] == ["alpha", "bravo"]
    bad = _site("charlie").to_features() + [{"type": "Feature", "properties": {"site": "delta", "kind": "depot"},
                                             "geometry": {"type": "Point", "coordinates": [1, 2]}}]
    (tmp_path / "bad.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": bad}))
    with pytest.raises(SiteError, match=r"bad\.geojson: site 'delta' AOI: expected a Polygon, got Point"):
        import_sites(tmp_path / "bad.geojson")
    assert [s.name for s in list_sites()][-2:] == ["alpha", "bravo"]
    (tmp_path / "junk.geojson").write_text("{oops")
    with pytest.raises(SiteError, match=r"junk\.geojson: not valid JSON"):
        import_sites(tmp_path / "junk.geojson")
    with pytest.raises(SiteError, match="file not found"):
        import_sites(tmp_path / "none.geojson")


def test_plain_geojson_with_name_property_imports() -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Al Ḍhafra Depot", "kind": "depot"},
         "geometry": {"type": "Polygon", "coordinates": [[[54.5, 24.2], [54.52, 24.2], [54.52, 24.22], [54.5, 24.2]]]}}]}
    (site,) = sites_from_geojson(fc)
    assert site.name == "al-dhafra-depot" and site.title == "Al Ḍhafra Depot"
    with pytest.raises(SiteError, match="has no 'kind'"):
        sites_from_geojson({"type": "Feature", "properties": {"name": "x"}, "geometry": fc["features"][0]["geometry"]})


def test_coverage_of_scene(tmp_path: Path) -> None:
    site = _site(aoi=box(10.0, 50.0, 10.02, 50.01), zones={})
    # Image covers lon 10.01..10.03, lat 50.0..50.01: the east half of the AOI.
    path = write_raster(tmp_path / "s.tif", np.zeros((3, 100, 200), np.uint8), crs="EPSG:4326",
                        transform=from_origin(10.01, 50.01, 1e-4, 1e-4))
    with open_scene(path) as scene:
        assert site.coverage_of(scene) == pytest.approx(0.5, abs=1e-6)
    shot = write_raster(tmp_path / "s.png", np.zeros((3, 100, 200), np.uint8), driver="PNG")
    with open_scene(shot, gsd_m=0.5) as scene:
        assert site.coverage_of(scene) is None  # pixel space: unknown, not zero
