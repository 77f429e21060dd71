"""The web API (``sitewatch serve``) with FastAPI's TestClient, on SQLite and on PostGIS.

The store holds two passes with exact answers (tests/api_support.py): counts, filters, paging,
the comparison, the one error table, the token rules and the claims flow are checked against them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import empty_store_url, fill_store, pg_database  # noqa: F401 - fixture
from sitewatch.api import ApiSettings, create_app
from sitewatch.api.errors import STATUS_CODES, status_for
from sitewatch.errors import SiteError, StoreError, UnknownPassError
from sitewatch.store import open_store

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return empty_store_url(request, tmp_path)


@pytest.fixture
def filled(store_url: str, tmp_path: Path) -> tuple[str, int, int]:
    a, b = fill_store(store_url, tmp_path)
    return store_url, a, b


def client_for(url: str, tmp_path: Path, **settings) -> TestClient:
    s = ApiSettings(home=tmp_path / "home", **settings)
    return TestClient(create_app(url, s))


@pytest.fixture
def api(filled, tmp_path: Path):
    url, a, b = filled
    with client_for(url, tmp_path, token=TOKEN) as c:
        c.headers.update(AUTH)
        yield c, a, b


def test_sites_and_passes(api) -> None:
    c, a, b = api
    sites = c.get("/api/sites", params={"stored": "true"}).json()
    assert [(s["name"], s["passes"], s["on_watchlist"]) for s in sites] == [("hmeimim", 2, True)]
    assert len(c.get("/api/sites").json()) > 1  # the whole watchlist
    site = c.get("/api/sites/hmeimim").json()
    assert [p["id"] for p in site["pass_list"]] == [a, b]
    assert site["pass_list"][0]["counts"] == {"aircraft": 2, "helicopter": 1}
    assert site["geojson"]["features"][0]["properties"]["role"] == "aoi"
    p = c.get(f"/api/passes/{b}").json()
    assert (p["detections"], p["georeferenced"], p["acquired"][:10]) == (2, True, "2024-03-04")
    assert c.get("/api/sites/Khmeimim/passes").json()[1]["id"] == b  # aliases resolve


def test_detections_filters_and_paging(api) -> None:
    c, a, b = api
    fc = c.get(f"/api/passes/{a}/detections").json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] == 3 and fc["next"] is None
    f0 = fc["features"][0]
    assert f0["geometry"]["type"] == "Polygon"
    assert f0["properties"]["best_type"] == "su-24" and f0["properties"]["length_m"] == 20.5
    assert len(f0["properties"]["pixel_polygon"]) == 4
    # the bbox around pixel (50, 50) holds one aircraft in each pass
    lon, lat = 35.945 + 50e-5, 35.401 - 50e-5
    bbox = f"{lon - 5e-5},{lat - 5e-5},{lon + 5e-5},{lat + 5e-5}"
    got = c.get("/api/sites/hmeimim/detections", params={"bbox": bbox}).json()
    assert [f["properties"]["pass_id"] for f in got["features"]] == [a, b]
    assert c.get(f"/api/passes/{a}/detections", params={"bbox": bbox}).json()["numberMatched"] == 1
    assert c.get("/api/sites/hmeimim/detections", params={"category": "aircraft"}).json()["numberMatched"] == 3
    assert c.get("/api/sites/hmeimim/detections", params={"type": "su-24"}).json()["numberMatched"] == 2
    after = c.get("/api/sites/hmeimim/detections", params={"start": "2024-03-02"}).json()
    assert {f["properties"]["pass_id"] for f in after["features"]} == {b}
    assert c.get("/api/sites/hmeimim/detections", params={"end": "2024-03-02T00:00Z"}).json()["numberMatched"] == 3
    page1 = c.get("/api/sites/hmeimim/detections", params={"limit": 2}).json()
    assert page1["numberReturned"] == 2 and page1["numberMatched"] == 5
    page2 = c.get(page1["next"]).json()
    page3 = c.get(page2["next"]).json()
    ids = [f["id"] for f in page1["features"] + page2["features"] + page3["features"]]
    assert len(ids) == len(set(ids)) == 5 and page3["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "10,2,3,4"}, "bbox"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"min_score": "2"}, "min_score"),
        ({"category": "tank"}, "category"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2024-03-05", "end": "2024-03-01"}, "end"),
    ],
)
def test_bad_query_values_are_422_naming_the_field(api, query: dict, field: str) -> None:
    c, _, _ = api
    r = c.get("/api/sites/hmeimim/detections", params=query)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and field in r.json()["detail"]


def test_unknown_site_and_pass_are_404_json(api) -> None:
    c, a, _ = api
    for url in ("/api/sites/atlantis", "/api/sites/atlantis/detections", "/api/passes/9999", "/api/passes/9999/detections",
                f"/api/passes/{a}/detections/9999/chip.png", "/api/jobs/" + "0" * 32, "/api/sites/hmeimim/compare?a=9999&b=1"):
        r = c.get(url)
        assert r.status_code == 404, url
        assert r.headers["content-type"] == "application/json" and r.json()["detail"]


def test_compare_timeline_and_exports(api) -> None:
    c, a, b = api
    comp = c.get("/api/sites/hmeimim/compare").json()
    assert (comp["pass_a"]["id"], comp["pass_b"]["id"]) == (a, b)
    counts = comp["counts"]
    assert (counts["aircraft"]["remained"], counts["aircraft"]["departed"]) == (1, 1)
    assert (counts["helicopter"]["departed"], counts["ship"]["arrived"]) == (1, 1)
    assert c.get("/api/sites/hmeimim/compare", params={"a": a, "b": a}).status_code == 422
    tl = c.get("/api/sites/hmeimim/timeline").json()
    assert [e["pass_id"] for e in tl] == [a, b] and tl[1]["counts"] == {"aircraft": 1, "ship": 1}
    r = c.get("/api/sites/hmeimim/export/geojson")
    assert r.status_code == 200 and len(r.json()["features"]) == 5
    assert "attachment" in r.headers["content-disposition"]
    r = c.get("/api/sites/hmeimim/export/csv", params={"pass": b})
    assert r.status_code == 200 and len(r.text.strip().splitlines()) == 3
    assert c.get("/api/sites/hmeimim/export/shapefile").json()["field"] == "fmt"
    chip = c.get(f"/api/passes/{a}/detections/{c.get(f'/api/passes/{a}/detections').json()['features'][0]['id']}/chip.png")
    assert chip.status_code == 200 and chip.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiles_show_the_scene_pixels(api) -> None:
    import io
    import math

    import numpy as np
    from PIL import Image

    c, a, _ = api
    z = 17
    lon, lat = 35.946, 35.400
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    r = c.get(f"/api/passes/{a}/tiles/{z}/{x}/{y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    seen = img[..., 3] > 0
    assert seen.any() and set(np.unique(img[..., 0][seen])) <= {90, 230} | set(range(85, 236))
    far = c.get(f"/api/passes/{a}/tiles/3/1/1.png")
    assert far.status_code == 200 and np.asarray(Image.open(io.BytesIO(far.content)).convert("RGBA"))[..., 3].max() == 0
    assert c.get(f"/api/passes/{a}/tiles/3/9/1.png").json()["field"] == "x"


def test_claims_and_delete_need_the_token(filled, tmp_path: Path) -> None:
    url, a, b = filled
    report = {"text": "At least ten combat aircraft have left the Hmeimim air base since March 1, according to an official.",
              "source": "Test Wire", "published": "2024-03-05T12:00:00Z", "reliability": "C"}  # fmt: skip
    with client_for(url, tmp_path) as c:  # no token configured: reads open, writes refused
        assert c.get("/api/sites/hmeimim/claims").json() == []
        r = c.post("/api/sites/hmeimim/claims", json=report)
        assert r.status_code == 403 and "SITEWATCH_API_TOKEN" in r.json()["detail"]
        assert c.delete(f"/api/passes/{a}").status_code == 403
    with client_for(url, tmp_path, token=TOKEN) as c:
        assert c.get("/api/sites").status_code == 401  # reads need it when set
        assert c.get("/api/sites", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/sites", params={"access_token": TOKEN}).status_code == 200
        assert c.post("/api/sites/hmeimim/claims", json=report).status_code == 401
        r = c.post("/api/sites/hmeimim/claims", json=report, headers=AUTH)
        assert r.status_code == 201, r.text
        stored = c.get("/api/sites/hmeimim/claims", headers=AUTH).json()
        assert len(stored) >= 1 and stored[0]["document_id"] == r.json()["document_id"]
        assert c.post("/api/sites/hmeimim/claims", json={**report, "text": "Это не английский текст."}, headers=AUTH).status_code == 422
        assert c.delete(f"/api/passes/{a}", headers=AUTH).status_code == 204
        assert c.get(f"/api/passes/{a}", headers=AUTH).status_code == 404
        assert c.delete(f"/api/passes/{a}", headers=AUTH).status_code == 404
    with open_store(url) as store:
        assert [p.id for p in store.list_passes("hmeimim")] == [b]


def test_add_site(filled, tmp_path: Path) -> None:
    url, _, _ = filled
    body = {"name": "test-field", "kind": "airbase", "bbox": [10.0, 50.0, 10.02, 50.01], "country": "de"}
    with client_for(url, tmp_path, token=TOKEN) as c:
        c.headers.update(AUTH)
        r = c.post("/api/sites", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["aoi_km2"] == pytest.approx(1.59, abs=0.02)
        assert c.get("/api/sites/test-field").json()["country"] == "DE"
        assert c.post("/api/sites", json=body).status_code == 409
        bad = c.post("/api/sites", json={**body, "name": "Bad Name"})
        assert bad.status_code == 422 and bad.json()["field"] == "name"
        assert c.post("/api/sites", json={**body, "name": "x2", "bbox": [10, 50, 9, 51]}).json()["field"] == "bbox"


def test_store_unreachable_is_503_with_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with client_for(f"sqlite:///{tmp_path / 'missing' / 'store.db'}", tmp_path) as c, caplog.at_level("ERROR"):
        r = c.get("/api/sites/hmeimim/passes")
        assert r.status_code == 503 and r.json()["error"] == "StoreError"
        assert "does not exist" in r.json()["detail"]
    lines = [rec for rec in caplog.records if rec.name == "sitewatch.api.errors"]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()


def test_one_error_table() -> None:
    assert status_for(UnknownPassError("x")) == 404  # the subclass wins over StoreError's 503
    assert status_for(StoreError("x")) == 503
    assert status_for(SiteError("x")) == 404
    assert status_for(RuntimeError("x")) == 500
    assert all(400 <= v < 600 for v in STATUS_CODES.values())


def test_openapi_lists_the_endpoints(api) -> None:
    c, _, _ = api
    paths = c.get("/openapi.json").json()["paths"]
    for p in ("/api/sites", "/api/sites/{name}", "/api/passes/{pass_id}", "/api/passes/{pass_id}/detections",
              "/api/sites/{name}/detections", "/api/sites/{name}/compare", "/api/sites/{name}/timeline",
              "/api/sites/{name}/claims", "/api/sites/{name}/assessment", "/api/sites/{name}/report.{fmt}",
              "/api/sites/{name}/export/{fmt}", "/api/sites/{name}/scans", "/api/sites/{name}/scans/upload",
              "/api/jobs/{job_id}", "/api/passes/{pass_id}/tiles/{z}/{x}/{y}.png"):  # fmt: skip
        assert p in paths, p
    assert "delete" in paths["/api/passes/{pass_id}"]


def test_cors_is_off_unless_configured(filled, tmp_path: Path) -> None:
    url, _, _ = filled
    pre = {"Origin": "https://example.org", "Access-Control-Request-Method": "GET"}
    with client_for(url, tmp_path) as c:
        assert "access-control-allow-origin" not in c.get("/api/sites", headers={"Origin": "https://example.org"}).headers
    with client_for(url, tmp_path, cors_origins=["https://example.org"]) as c:
        assert c.options("/api/sites", headers=pre).headers["access-control-allow-origin"] == "https://example.org"


def test_pixel_space_pass_of_a_site_not_on_the_watchlist(store_url: str, tmp_path: Path) -> None:
    from dataclasses import replace

    from api_support import detection, make_pass, write_scene

    scene = write_scene(tmp_path / "shot.tif")
    p = make_pass(scene, None, [detection(50, 50, "aircraft")])
    p = replace(p, site="airfield-x", crs=None, transform=None, footprint_wkt=None, aoi_coverage=None,
                detections=[replace(d, footprint=None) for d in p.detections], metadata={"scene_size_px": [200, 200]})  # fmt: skip
    with open_store(store_url) as store:
        pid = store.save_pass(p)
    with client_for(store_url, tmp_path) as c:
        site = c.get("/api/sites/airfield-x").json()
        assert (site["on_watchlist"], site["passes"], site["center"]) == (False, 1, None)
        assert site["pass_list"][0]["georeferenced"] is False and site["pass_list"][0]["scene_size_px"] == [200, 200]
        f = c.get(f"/api/passes/{pid}/detections").json()["features"][0]
        assert f["geometry"] is None
        xs = [xy[0] for xy in f["properties"]["pixel_polygon"]]
        assert min(xs) < 50 < max(xs)
        r = c.get(f"/api/passes/{pid}/image.jpg", params={"max_px": 100})
        assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"
        import io

        from PIL import Image

        assert Image.open(io.BytesIO(r.content)).size == (100, 100)
        t = c.get(f"/api/passes/{pid}/tiles/10/600/400.png")
        assert t.status_code == 422 and "image.jpg" in t.json()["detail"]


def test_tiles_of_a_screenshot_placed_with_its_stored_transform(tmp_path: Path) -> None:
    """A scene file without georeference (a screenshot placed with --center) is tiled with the CRS
    and transform stored on its pass: the same pixels land where the georeferenced copy puts them."""
    import io
    import math
    from dataclasses import replace

    import numpy as np
    import rasterio
    from PIL import Image

    from api_support import TRANSFORM, make_pass, write_scene

    url = f"sqlite:///{tmp_path / 'store.db'}"
    geo = write_scene(tmp_path / "geo.tif")
    with rasterio.open(geo) as src:
        rgb = src.read()
    shot = tmp_path / "shot.png"
    with rasterio.open(shot, "w", driver="PNG", width=200, height=200, count=3, dtype="uint8") as dst:
        dst.write(rgb)
    with open_store(url) as store:
        a = store.save_pass(make_pass(geo, None, []))
        b = store.save_pass(replace(make_pass(shot, None, []), scene_path=str(shot), transform=tuple(TRANSFORM)[:6]))
    z = 17
    lon, lat = TRANSFORM * (50, 50)
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    with client_for(url, tmp_path) as c:
        tiles = [np.asarray(Image.open(io.BytesIO(c.get(f"/api/passes/{p}/tiles/{z}/{x}/{y}.png").content)).convert("RGBA")) for p in (a, b)]
    assert tiles[0][..., 3].any() and (tiles[0] == tiles[1]).all()


def test_reports_warmed_at_start(filled, tmp_path: Path) -> None:
    import time

    url, a, b = filled
    with client_for(url, tmp_path, warm_reports=True) as c:
        ctx = c.app.state.ctx
        assert c.get("/api/health").json()["report_warm_up"] in ("building", "done")
        end = time.monotonic() + 300  # built by a low-priority child process: slow on a busy machine
        while c.get("/api/health").json()["report_warm_up"] != "done" and time.monotonic() < end:
            time.sleep(0.2)
        assert len(ctx.reports._items) == 1  # the one site with passes, built in the child process
        t0 = time.monotonic()
        r = c.get("/api/sites/hmeimim/assessment")
        assert r.status_code == 200 and time.monotonic() - t0 < 5  # from the cache
        assert [p["id"] for p in r.json()["passes"]] == [a, b]


@pytest.mark.parametrize(
    ("url", "message"),
    [("bogus://x", "unsupported store URL 'bogus://x'"), ("postgresql://u:pw@127.0.0.1:1/db", "cannot open"),
     ("sqlite:////nonexistent-dir/x.db", "/nonexistent-dir does not exist")],
)  # fmt: skip
def test_serve_refuses_a_store_it_cannot_open(url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One line and exit 2 before any server starts (not a server answering 503 to every request)."""
    from sitewatch.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--store", url, "--port", "18997"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0], err
