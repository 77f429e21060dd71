import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
from rasterio.transform import from_origin

from _rasters import write_raster
from sitewatch.errors import SceneError
from sitewatch.imagery import open_scene, search_stac
from sitewatch.imagery.stac import choose_asset

COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def _item(asset_href: str, **assets: dict) -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": "sw-test-001",
        "collection": "demo",
        "geometry": {"type": "Polygon", "coordinates": [[[35.9, 35.44], [35.92, 35.44], [35.92, 35.45], [35.9, 35.45], [35.9, 35.44]]]},
        "bbox": [35.9, 35.44, 35.92, 35.45],
        "properties": {
            "datetime": "2024-05-06T08:30:00Z",
            "platform": "worldview-3",
            "constellation": "maxar",
            "gsd": 0.31,
            "view:off_nadir": 12.5,
            "view:azimuth": 210.0,
            "view:sun_elevation": 61.0,
        },
        "links": [],
        "assets": {
            "thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
            "rendered_preview": {"href": "preview.png", "type": "image/png", "roles": ["overview"]},
            "visual": {"href": asset_href, "type": COG, "roles": ["visual"]},
            **assets,
        },
    }


def _cog(path: Path) -> Path:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(3, 256, 256), dtype=np.uint8)
    return write_raster(path, data, crs="EPSG:32636", transform=from_origin(500_000, 3_920_000, 0.5, 0.5),
                        tiled=True, blockxsize=128, blockysize=128, overviews=[2, 4])


def test_local_item_visual_asset_and_metadata(tmp_path: Path) -> None:
    _cog(tmp_path / "visual.tif")
    (tmp_path / "item.json").write_text(json.dumps(_item("visual.tif")))
    with open_scene(tmp_path / "item.json") as scene:
        assert scene.path.endswith("visual.tif")
        assert scene.acquired.isoformat() == "2024-05-06T08:30:00+00:00"
        assert scene.gsd_m == pytest.approx(0.5)  # measured from the asset's georeference
        m = scene.metadata
        assert (m["stac_asset"], m["platform"], m["constellation"]) == ("visual", "worldview-3", "maxar")
        assert (m["off_nadir_deg"], m["view_azimuth_deg"], m["sun_elevation_deg"]) == (12.5, 210.0, 61.0)
        assert scene.crs.to_epsg() == 32636
    with open_scene(tmp_path / "item.json", acquired="2024-05-07") as scene:
        assert scene.acquired.day == 7


def test_asset_choice_order() -> None:
    item = pystac.Item.from_dict(_item("v.tif", data={"href": "d.tif", "type": COG, "roles": ["data"]}))
    assert choose_asset(item)[0] == "visual"
    del item.assets["visual"]
    assert choose_asset(item)[0] == "data"
    del item.assets["data"]
    assert choose_asset(item)[0] == "rendered_preview"  # last resort, never the thumbnail
    del item.assets["rendered_preview"]
    with pytest.raises(SceneError, match="no image asset among thumbnail"):
        choose_asset(item)
    with pytest.raises(SceneError, match="no asset 'nir'; assets: thumbnail"):
        choose_asset(item, "nir")


def test_not_an_item(tmp_path: Path) -> None:
    coll = {"type": "Collection", "stac_version": "1.0.0", "id": "c", "description": "d", "license": "CC-BY-4.0",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}}, "links": []}
    (tmp_path / "c.json").write_text(json.dumps(coll))
    with pytest.raises(SceneError, match="not an Item"):
        open_scene(tmp_path / "c.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SceneError, match=r"bad\.json: not a readable STAC Item"):
        open_scene(tmp_path / "bad.json")
    (tmp_path / "gone.json").write_text(json.dumps(_item("missing.tif")))
    with pytest.raises(SceneError, match=r"gone\.json: asset 'visual': .*missing\.tif: file not found"):
        open_scene(tmp_path / "gone.json")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """Base URL of a local HTTP server (own process) serving ``tmp_path``."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_http_stub.py")), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def _requests(root: Path) -> list[str]:
    log = root / "requests.log"
    return log.read_text().splitlines() if log.exists() else []


def test_item_by_url_reads_cog_over_http(tmp_path: Path, server: str) -> None:
    base = server
    _cog(tmp_path / "visual.tif")
    (tmp_path / "item.json").write_text(json.dumps(_item("visual.tif")))  # relative href: resolves against the URL
    with open_scene(f"{base}/item.json") as scene:
        assert scene.path == f"{base}/visual.tif"
        assert scene.width == 256 and scene.crs.to_epsg() == 32636
        rgb, valid = scene.read_rgb()
        assert valid.all() and rgb.std() > 50
    assert any(r.startswith("GET /visual.tif") for r in _requests(tmp_path))


def test_search_stac_against_local_api(tmp_path: Path, server: str) -> None:
    base = server
    items = [_item(f"{base}/a{i}.tif") | {"id": f"it-{i}"} for i in range(3)]
    landing = {
        "type": "Catalog", "stac_version": "1.0.0", "id": "stub", "description": "stub API",
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": f"{base}/", "type": "application/json"},
            {"rel": "root", "href": f"{base}/", "type": "application/json"},
            {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "POST"},
        ],
    }
    (tmp_path / "index.json").write_text(json.dumps(landing))
    (tmp_path / "search.json").write_text(json.dumps({"type": "FeatureCollection", "features": items, "links": []}))
    found = search_stac(f"{base}/", (35.9, 35.4, 36.0, 35.5), "2024-01-01/2024-06-30", ["demo"], limit=2)
    assert [i.id for i in found] == ["it-0", "it-1"]
    post = next(r for r in _requests(tmp_path) if r.startswith("POST /search"))
    body = json.loads(post.split(" ", 2)[2])
    assert body["bbox"] == [35.9, 35.4, 36.0, 35.5] and body["collections"] == ["demo"]
    assert body["datetime"].startswith("2024-01-01T00:00:00Z/2024-06-30")


def test_search_stac_unreachable() -> None:
    with pytest.raises(SceneError, match="STAC search failed"):
        search_stac("http://127.0.0.1:9/", (0, 0, 1, 1))


def test_item_georeference_for_plain_asset(tmp_path: Path) -> None:
    # A PNG asset with no georeference of its own takes proj:epsg + proj:transform from the Item,
    # and an item without a .json suffix is still recognised.
    write_raster(tmp_path / "img.png", np.zeros((3, 64, 64), np.uint8), driver="PNG")
    item = _item("img.png")
    item["assets"]["visual"]["type"] = "image/png"
    item["properties"].update({"proj:epsg": 32637, "proj:transform": [1.0, 0.0, 499_900.0, 0.0, -1.0, 100.0]})
    (tmp_path / "item").write_text(json.dumps(item))
    from sitewatch.imagery import pixel_to_lonlat

    with open_scene(tmp_path / "item") as scene:
        assert scene.metadata["georeference"] == "stac" and scene.gsd_m == pytest.approx(1.0)
        lon, lat = pixel_to_lonlat(scene, [100.0], [100.0])
        assert lon[0] == pytest.approx(39.0) and lat[0] == pytest.approx(0.0, abs=1e-9)
    item["properties"].pop("proj:transform")
    (tmp_path / "item2.json").write_text(json.dumps(item))
    with open_scene(tmp_path / "item2.json") as scene:  # pixel space: the item's nominal GSD
        assert not scene.georeferenced and scene.gsd_m == 0.31


def test_force_reaches_a_stac_items_asset(tmp_path: Path) -> None:
    """A GSD outside the accepted range given with a STAC item: refused, or taken with force."""
    from sitewatch.errors import GeoreferenceError

    write_raster(tmp_path / "img.png", np.zeros((3, 64, 64), np.uint8), driver="PNG")
    item = _item("img.png")
    item["assets"]["visual"]["type"] = "image/png"
    (tmp_path / "item.json").write_text(json.dumps(item))
    with pytest.raises(GeoreferenceError, match="outside"):
        open_scene(tmp_path / "item.json", gsd_m=50.0)
    with open_scene(tmp_path / "item.json", gsd_m=50.0, force=True) as scene:
        assert scene.gsd_m == 50.0
