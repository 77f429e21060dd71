"""The server's cache of per-pass responses (sitewatch.api.cache): ETags and 304s, bytes identical to an
uncached server, the token still checked, and no cached answer for a pass deleted or replaced since.

The store is tests/api_support.py's: pass A (3 detections) and pass B (2) of Hmeimim.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api_support import detection, empty_store_url, fill_store, make_pass, pg_database  # noqa: F401 - fixture
from sitewatch.api import ApiSettings, create_app
from sitewatch.api.cache import CACHE_CONTROL, CachedResponse, PassResponseCache, entity_tag, none_match
from sitewatch.api.views import pass_summary
from sitewatch.store import Store, open_store

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SRC = Path(__file__).resolve().parents[1] / "src"
# around pixel (50, 50) of the scene: one aircraft in each pass
BBOX = f"{35.945 + 45e-5},{35.401 - 55e-5},{35.945 + 55e-5},{35.401 - 45e-5}"
QUERIES = ["", "limit=2", "limit=2&offset=2", "offset=2&limit=2", "category=aircraft", f"bbox={BBOX}",
           "min_score=0.5&limit=1", "type=su-24"]  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int, int]:
    url = empty_store_url(request, tmp_path)
    a, b = fill_store(url, tmp_path)
    return url, a, b


def client_for(url: str, tmp_path: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(url, ApiSettings(home=tmp_path / "home", **settings)))


def cache_of(c: TestClient) -> PassResponseCache:
    return c.app.state.ctx.pass_responses  # type: ignore[attr-defined]


class Counted:
    """Counts the store reads a request makes (patched onto the Store class)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in ("pass_stamp", "get_pass"):
            original = getattr(Store, name)

            def counted(store: Store, *args: Any, _name: str = name, _f: Any = original) -> Any:
                self.calls.append(_name)
                return _f(store, *args)

            monkeypatch.setattr(Store, name, counted)


def test_etag_round_trip(filled, tmp_path: Path) -> None:
    url, a, _ = filled
    with client_for(url, tmp_path) as c:
        for path in (f"/api/passes/{a}/detections", f"/api/passes/{a}", f"/api/passes/{a}/image.jpg?max_px=64"):
            r = c.get(path)
            etag = r.headers["etag"]
            assert r.status_code == 200 and re.fullmatch(r'"[0-9a-f]{32}"', etag) and etag == entity_tag(r.content)
            assert r.headers["cache-control"] == CACHE_CONTROL == "private, max-age=3600, immutable"
            for sent in (etag, f"W/{etag}", f'"0123", {etag}', "*"):
                again = c.get(path, headers={"If-None-Match": sent})
                assert again.status_code == 304, (path, sent)
                assert again.content == b"" and "content-type" not in again.headers
                assert again.headers["etag"] == etag and again.headers["cache-control"] == CACHE_CONTROL
            other = c.get(path, headers={"If-None-Match": '"0123"'})
            assert (other.status_code, other.content, other.headers["etag"]) == (200, r.content, etag)
        paged = c.get(f"/api/passes/{a}/detections", params={"limit": 1})
        assert paged.headers["etag"] != c.get(f"/api/passes/{a}/detections").headers["etag"]
        etag = paged.headers["etag"]
    # the ETag is the hash of the bytes: another server (cold cache, the route builds the page) agrees
    with client_for(url, tmp_path) as c:
        r = c.get(f"/api/passes/{a}/detections?limit=1", headers={"If-None-Match": etag})
        assert (r.status_code, r.headers["etag"]) == (304, etag)


def test_cached_bytes_equal_uncached(filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, a, b = filled
    counted = Counted(monkeypatch)
    with client_for(url, tmp_path) as cached, client_for(url, tmp_path, response_cache_mb=0) as plain:
        for pass_id in (a, b):
            for q in QUERIES:
                path = f"/api/passes/{pass_id}/detections" + (f"?{q}" if q else "")
                first, second, uncached = cached.get(path), cached.get(path), plain.get(path)
                assert first.status_code == 200
                assert first.content == second.content == uncached.content, path
                for h in ("content-type", "content-length", "etag", "cache-control"):
                    assert first.headers[h] == second.headers[h] == uncached.headers[h], (path, h)
        assert len(cache_of(plain)) == 0
        # a cached answer on SQLite reads nothing from the store; each uncached one reads the pass
        summary = cached.get(f"/api/passes/{b}")
        counted.calls.clear()
        assert cached.get(f"/api/passes/{a}/detections?limit=2").status_code == 200
        assert cached.get(f"/api/passes/{b}").content == summary.content
        expected = [] if url.startswith("sqlite") else ["pass_stamp", "pass_stamp"]
        assert counted.calls == expected
        counted.calls.clear()
        assert plain.get(f"/api/passes/{a}/detections?limit=2").status_code == 200
        assert counted.calls == ["pass_stamp", "get_pass"]
    # the pass summary: the bytes FastAPI makes of the same dict returned by a route
    bare = FastAPI()

    @bare.get("/p")
    def p() -> dict[str, Any]:
        with open_store(url) as store:
            return pass_summary(store.get_pass(b))

    with TestClient(bare) as c:
        assert c.get("/p").content == summary.content
    assert summary.headers["content-type"] == "application/json"


def test_a_deleted_pass_is_never_answered_from_the_cache(filled, tmp_path: Path) -> None:
    url, a, b = filled
    with client_for(url, tmp_path) as c:
        paths = [f"/api/passes/{a}/detections", f"/api/passes/{a}/detections?limit=1", f"/api/passes/{a}"]
        etags = [c.get(p).headers["etag"] for p in paths * 2][:3]  # second round: from the cache
        assert len(cache_of(c)) == 3
        # deleted by another process on the same store (as `sitewatch watch` drops a failed item's pass)
        code = f"from sitewatch.store import open_store\nwith open_store({url!r}) as s: s.delete_pass({a})"
        subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC)})
        for path, etag in zip(paths, etags, strict=True):
            r = c.get(path, headers={"If-None-Match": etag})
            assert r.status_code == 404 and r.json()["error"] == "UnknownPassError", path
        assert len(cache_of(c)) == 0
        assert c.get(f"/api/passes/{b}/detections").json()["numberMatched"] == 2  # the other pass is unchanged


def test_a_rescanned_pass_is_replaced(filled, tmp_path: Path) -> None:
    url, a, _ = filled
    with client_for(url, tmp_path) as c:
        old = c.get(f"/api/passes/{a}/detections")
        assert old.json()["numberMatched"] == 3 and c.get(f"/api/passes/{a}/detections").content == old.content
        with open_store(url) as store:  # the same scene scanned again (scan --force): a new pass, A deleted
            scene = store.get_pass(a).scene_path
            p = make_pass(Path(scene), datetime(2024, 3, 1, 8, 30, tzinfo=UTC), [detection(60, 60, "ship")])
            new = store.save_pass(replace(p, scene_path=scene))
        assert new != a
        assert c.get(f"/api/passes/{a}/detections").status_code == 404
        assert c.get(f"/api/passes/{a}").status_code == 404
        fc = c.get(f"/api/passes/{new}/detections").json()
        assert (fc["numberMatched"], fc["features"][0]["properties"]["category"]) == (1, "ship")


def test_delete_through_the_api(filled, tmp_path: Path) -> None:
    url, a, b = filled
    with client_for(url, tmp_path, token=TOKEN) as c:
        c.headers.update(AUTH)
        for path in (f"/api/passes/{a}/detections", f"/api/passes/{b}/detections", f"/api/passes/{a}"):
            c.get(path)
        assert len(cache_of(c)) == 3
        assert c.delete(f"/api/passes/{a}").status_code == 204
        assert len(cache_of(c)) == 1
        assert c.get(f"/api/passes/{a}/detections").status_code == 404


def test_cached_answers_still_need_the_token(filled, tmp_path: Path) -> None:
    url, a, _ = filled
    with client_for(url, tmp_path, token=TOKEN) as c:
        path = f"/api/passes/{a}/detections"
        ok = c.get(path, headers=AUTH)
        assert c.get(path, headers=AUTH).content == ok.content  # cached now
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.get(path, headers={"If-None-Match": ok.headers["etag"]})
        assert r.status_code == 401 and r.json()["error"] == "AuthenticationError"
        r = c.get(f"{path}?access_token={TOKEN}")  # the token in the query: a page of its own (its next link)
        assert r.status_code == 200 and r.headers["etag"] == ok.headers["etag"]
        assert c.get(f"{path}?access_token=wrong").status_code == 401


def test_a_store_without_change_marks_looks_the_pass_up_every_time(
    filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL has no cheap change mark: each request checks the pass exists, and the bytes are reused."""
    url, a, _ = filled
    monkeypatch.setattr(Store, "change_mark", lambda self: None)
    counted = Counted(monkeypatch)
    with client_for(url, tmp_path) as c:
        bodies = {c.get(f"/api/passes/{a}/detections").content for _ in range(3)}
        assert len(bodies) == 1
        assert counted.calls == ["pass_stamp", "get_pass", "pass_stamp", "pass_stamp"]
        with open_store(url) as store:
            store.delete_pass(a)
        assert c.get(f"/api/passes/{a}/detections").status_code == 404


def test_the_cache_is_bounded_in_bytes() -> None:
    def entry(pass_id: int, n: int) -> CachedResponse:
        body = b"x" * n
        return CachedResponse(body, entity_tag(body), "application/json", pass_id, None, (1, 1))

    cache = PassResponseCache(10)
    for i in range(3):
        cache.put((f"/p/{i}", b""), entry(i, 4))
    assert (len(cache), cache.nbytes) == (2, 8)
    assert cache.get(("/p/0", b"")) is None and cache.fresh(("/p/2", b""), (1, 1)) is not None
    assert cache.fresh(("/p/2", b""), (1, 2)) is None and cache.fresh(("/p/2", b""), None) is None
    cache.put(("/big", b""), entry(9, 11))  # bigger than the bound: not kept
    assert (len(cache), cache.nbytes) == (2, 8)
    cache.get(("/p/1", b""))  # used: the other is the oldest now
    cache.put(("/p/3", b""), entry(3, 4))
    assert sorted(k[0] for k in cache._items) == ["/p/1", "/p/3"]
    cache.forget_pass(3)
    assert (len(cache), cache.nbytes) == (1, 4)
    assert len(PassResponseCache(0)) == 0


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, False), ("", False), ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ('"x","y"', False),
        ("*", True), (" * ", True), ("abc", False), ('"ab"', False), ('"abcd"', False),
    ],
)  # fmt: skip
def test_if_none_match(header: str | None, match: bool) -> None:
    assert none_match(header, '"abc"') is match
