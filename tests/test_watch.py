"""sitewatch watch: sources, state, alerts and channels against real servers on loopback."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from detect_support import write_block_model
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.store import open_store
from sitewatch.store.watchstate import WatchLedger
from sitewatch.watch import Watcher, load_config, status
from sitewatch.watch.config import QuietHours, WatchConfig
from test_store import pg_database  # noqa: F401 - a private PostGIS database (fixture)
from watch_support import Servers, SmtpSink, WebhookReceiver, add_watch_site, block_pass, free_port, stac_item

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SECRET = b"s3cret-key"


@pytest.fixture(scope="module")
def block_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_block_model(tmp_path_factory.mktemp("model") / "block.onnx")


@pytest.fixture(scope="module")
def detector(block_model: Path) -> OnnxDetector:
    return OnnxDetector(block_model)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store: a SQLite file, or the private PostGIS database emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'w.db'}"
        return
    from sqlalchemy import text

    from sitewatch.store.store import make_engine

    url = request.getfixturevalue("pg_database")
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alert_deliveries, alerts, watch_items, watch_sources, claims, documents, detections, "
                          "passes, schema_version CASCADE"))  # fmt: skip
    eng.dispose()
    yield url


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path / "srv")
    yield s
    s.close()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET)
    yield r
    r.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    s = SmtpSink()
    yield s
    s.close()


def _config(sources: list[dict], channels: list[dict], **extra) -> WatchConfig:  # noqa: ANN003
    rules = extra.pop("rules", {})
    return WatchConfig.model_validate({"sites": [{"site": "watchbase", "sources": sources, "rules": rules}], "channels": channels,
                                       "read_pixels": False, "retry": {"first_s": 60, "max_s": 600, "attempts": 3}, **extra})  # fmt: skip


def _channels(tmp_path: Path, hook: WebhookReceiver | None = None, smtp: SmtpSink | None = None, smtp_port: int | None = None) -> list[dict]:
    chans: list[dict] = [{"type": "log"}, {"type": "atom", "path": str(tmp_path / "alerts.atom")}]
    if hook is not None:
        chans.append({"type": "webhook", "url": hook.url, "secret_env": "SW_TEST_HOOK_SECRET"})
    if smtp is not None or smtp_port is not None:
        chans.append({"type": "email", "host": "127.0.0.1", "port": smtp_port or smtp.port, "sender": "watch@test", "to": ["desk@test"]})
    return chans


def _kinds(store, site: str = "watchbase") -> list[tuple[str, str, str]]:  # noqa: ANN001
    return sorted((a.item_id, a.kind, a.subject) for a in WatchLedger(store).alerts(site))


def test_stac_api_cycle_alerts_on_every_channel(tmp_path: Path, servers: Servers, hook: WebhookReceiver, smtp: SmtpSink,
                                                detector, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("SW_TEST_HOOK_SECRET", SECRET.decode())
    add_watch_site()
    servers.add_pass("p1", 20, T0, **{"eo:cloud_cover": 5})
    servers.add_pass("p2", 8, T0 + timedelta(days=3), **{"eo:cloud_cover": 5})
    cfg = _config([{"type": "stac-api", "url": servers.api_url, "collections": ["blocks"], "max_cloud_pct": 20}],
                  _channels(tmp_path, hook, smtp), reports=str(tmp_path / "reports"))  # fmt: skip
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with open_store(url) as store:
        res = Watcher(cfg, store, detector=detector).run_once()
        passes = store.list_passes("watchbase")
        assert [len(p.detections) for p in passes] == [20, 8]
        assert res.passes == [p.id for p in passes] and not res.failed
        kinds = _kinds(store)
        assert ("p2", "indicator-fired", "aircraft-count-drop") in kinds
        assert not any(k[1] == "indicator-fired" and k[0] == "p1" and k[2] == "aircraft-count-drop" for k in kinds)
        drop = next(a for a in WatchLedger(store).alerts("watchbase") if a.subject == "aircraft-count-drop")
        ev = drop.payload["evidence"]
        assert ev["pass"]["counts"]["aircraft"] == 8 and ev["previous_pass"]["counts"]["aircraft"] == 20
        assert drop.payload["indicator"]["values"]["count_change"] == -12
        assert Path(ev["report"]).is_file() and ev["report"].endswith(f"watchbase-pass{passes[1].id}.html")
        # chips of the departed aircraft, cut from the previous pass (6 of the 12), with the red box drawn
        assert [(c["status"], c["pass_id"]) for c in ev["chips"]] == [("departed", passes[0].id)] * 6
        from PIL import Image

        chip = np.asarray(Image.open(ev["chips"][0]["path"]).convert("RGB"))
        assert chip.shape == (256, 256, 3) and ((chip == (255, 30, 30)).all(axis=2)).sum() > 50
        n = len(kinds)
        # every alert went out once on each channel
        assert res.delivered == 4 * n
        assert sorted(int(r["alert"]) for r in hook.received) == sorted(res.alerts) and hook.bad_signatures == 0
        assert len(smtp.messages) == n and all(m["Subject"].startswith("[sitewatch] watchbase") for m in smtp.messages)
        entries = ET.parse(tmp_path / "alerts.atom").getroot().findall("{http://www.w3.org/2005/Atom}entry")
        assert len(entries) == n
        # COG assets were read by ranges
        assert any(r.startswith("GET /p2.tif bytes=") for r in servers.cog_requests())
        # a second cycle finds nothing new, rescans nothing, alerts nothing; it searched from the last item seen
        res2 = Watcher(cfg, store, detector=detector).run_once()
        assert (res2.passes, res2.alerts, res2.delivered) == ([], [], 0)
        assert len(store.list_passes("watchbase")) == 2 and len(hook.received) == n
        assert servers.searches()[-1]["datetime"].startswith("2024-05-03T09:00:00Z/")  # p2 minus one day of lookback
        assert servers.searches()[-1]["intersects"]["type"] == "Polygon"


def test_bad_items_are_one_line_each_and_store_unchanged(tmp_path: Path, servers: Servers, detector,
                                                         caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    add_watch_site()
    servers.add_pass("good", 20, T0)
    servers.add_pass("cloudy", 20, T0 + timedelta(hours=1), **{"eo:cloud_cover": 80})
    bad = stac_item("no-geometry", f"{servers.cog_url}/good.tif", T0 + timedelta(hours=2))
    del bad["geometry"]
    servers.add_item(bad)
    no_asset = stac_item("no-asset", f"{servers.cog_url}/good.tif", T0 + timedelta(hours=3))
    no_asset["assets"] = {"thumbnail": {"href": "t.png", "type": "image/png", "roles": ["thumbnail"]}}
    servers.add_item(no_asset)
    from watch_support import UTM_T

    far = UTM_T * UTM_T.translation(5000, 0)  # 2.5 km east: the scene misses the AOI
    block_pass(servers.cog_root / "far.tif", 5, T0, transform=far)
    far_item = stac_item("far", f"{servers.cog_url}/far.tif", T0 + timedelta(hours=4), transform=UTM_T)  # footprint lies: claims the site
    servers.add_item(far_item)
    servers.add_item(stac_item("missing-cog", f"{servers.cog_url}/gone.tif", T0 + timedelta(hours=5)))
    cfg = _config([{"type": "stac-api", "url": servers.api_url, "max_cloud_pct": 20}], _channels(tmp_path))
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as store, caplog.at_level(logging.INFO, logger="sitewatch.watch"):
        res = Watcher(cfg, store, detector=detector).run_once()
        assert [p.scene_path.rsplit("/", 1)[-1] for p in store.list_passes("watchbase")] == ["good.tif"]
        assert sorted(res.failed) == ["far", "missing-cog", "no-asset", "no-geometry"] and res.skipped == ["cloudy"]
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 4
        for item, words in [("no-geometry", "malformed STAC item"), ("no-asset", "no image asset"), ("far", "covers 0.00% of the AOI of site 'watchbase' (at least 1% needed)"),
                            ("missing-cog", "gone.tif")]:  # fmt: skip
            (line,) = [e for e in errors if f"item {item} failed" in e]
            assert words in line and "\n" not in line
        st = status(store)
        by_item = {f["item"]: f for f in st["failures"]}
        assert by_item["no-geometry"]["status"] == by_item["no-asset"]["status"] == by_item["far"]["status"] == "failed"
        assert by_item["missing-cog"]["status"] == "retry" and by_item["missing-cog"]["next_attempt"]
        assert st["sources"][0]["items"] == {"done": 1, "failed": 3, "retry": 1, "skipped": 1}
        # the next cycle retries only what is due: nothing yet; then, the asset published, it succeeds
        assert Watcher(cfg, store, detector=detector).run_once().failed == []
        block_pass(servers.cog_root / "gone.tif", 20, T0)
        later = Watcher(cfg, store, detector=detector, clock=lambda: datetime.now(UTC) + timedelta(minutes=5)).run_once()
        assert len(later.passes) == 1 and len(store.list_passes("watchbase")) == 2
        assert sorted(f["item"] for f in status(store)["failures"]) == ["far", "no-asset", "no-geometry"]


def test_unreachable_api_and_smtp_are_reported_and_retried(tmp_path: Path, detector, caplog: pytest.LogCaptureFixture,
                                                           store_url: str) -> None:  # fmt: skip
    add_watch_site()
    scenes = tmp_path / "incoming"
    scenes.mkdir()
    block_pass(scenes / "a.tif", 20, T0)
    block_pass(scenes / "b.tif", 6, T0 + timedelta(days=1))
    dead_api, dead_smtp = f"http://127.0.0.1:{free_port()}/", free_port()
    cfg = _config([{"type": "stac-api", "url": dead_api}, {"type": "folder", "path": str(scenes), "settle_s": 0}],
                  _channels(tmp_path, smtp_port=dead_smtp), rules={"indicators": ["aircraft-count-drop"], "hypotheses": False})  # fmt: skip
    with open_store(store_url) as store, caplog.at_level(logging.INFO, logger="sitewatch.watch"):
        res = Watcher(cfg, store, detector=detector).run_once()
        assert len(res.source_errors) == 1 and dead_api in res.source_errors[0]
        assert len(res.passes) == 2  # the folder source went on
        assert _kinds(store) == [("b.tif", "indicator-fired", "aircraft-count-drop")]
        assert len(res.delivery_failures) == 1 and "e-mail via 127.0.0.1" in res.delivery_failures[0]
        st = status(store)
        api = next(s for s in st["sources"] if s["source"].startswith("stac-api"))
        assert api["failures"] == 1 and "search failed" in api["error"]
        assert st["deliveries"] == {"pending": 1, "sent": 2, "failed": 0}
        assert st["delivery_failures"][0]["channel"] == "email"
        sink = SmtpSink.__new__(SmtpSink)
        from aiosmtpd.controller import Controller

        sink.messages = []

        class H:
            async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
                sink.messages.append(envelope.content)
                return "250 OK"

        ctl = Controller(H(), hostname="127.0.0.1", port=dead_smtp)
        ctl.start()
        try:
            later = Watcher(cfg, store, detector=detector, clock=lambda: datetime.now(UTC) + timedelta(minutes=2)).deliver()
        finally:
            ctl.stop()
        assert later.delivered == 1 and len(sink.messages) == 1
        assert status(store)["deliveries"] == {"pending": 0, "sent": 3, "failed": 0}


def test_folder_sidecar_quiet_hours_and_rules(tmp_path: Path, hook: WebhookReceiver, detector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SW_TEST_HOOK_SECRET", SECRET.decode())
    add_watch_site()
    scenes = tmp_path / "incoming"
    scenes.mkdir()
    block_pass(scenes / "a.tif", 20, datetime(2020, 1, 1, tzinfo=UTC))
    side = stac_item("a-item", "a.tif", T0, **{"view:off_nadir": 11.0})  # the sidecar's time wins over the file's
    (scenes / "a.json").write_text(json.dumps(side))
    block_pass(scenes / "b.tif", 9, T0 + timedelta(days=2))
    quiet = {"start": "22:00", "end": "06:00", "tz": "UTC"}
    night = datetime(2024, 5, 4, 23, 30, tzinfo=UTC)
    cfg = _config([{"type": "folder", "path": str(scenes), "settle_s": 0}], _channels(tmp_path, hook),
                  rules={"indicators": ["aircraft-count-drop"], "min_strength": 0.5, "hypotheses": False, "quiet_hours": quiet})  # fmt: skip
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        res = Watcher(cfg, store, detector=detector, clock=lambda: night).run_once()
        a, b = store.list_passes("watchbase")
        assert a.acquired == T0 and a.metadata["off_nadir_deg"] == 11.0 and a.metadata["stac_item"] == "a-item"
        assert _kinds(store) == [("b.tif", "indicator-fired", "aircraft-count-drop")]
        assert res.delivered == 2 and hook.received == []  # log + feed now, the webhook waits for 06:00
        morning = Watcher(cfg, store, detector=detector, clock=lambda: datetime(2024, 5, 5, 6, 1, tzinfo=UTC)).deliver()
        assert morning.delivered == 1 and [r["subject"] for r in hook.received] == ["aircraft-count-drop"]
        assert hook.received[0]["evidence"]["changes"]["counts"]["aircraft"]["departed"] == 11
    strict = _config([{"type": "folder", "path": str(scenes), "settle_s": 0}], _channels(tmp_path),
                     rules={"indicators": ["aircraft-count-drop"], "min_strength": 0.95, "hypotheses": False})  # fmt: skip
    with open_store(f"sqlite:///{tmp_path / 'w2.db'}") as store:
        Watcher(strict, store, detector=detector).run_once()
        assert _kinds(store) == []  # the drop fires at strength 0.9 < 0.95


def test_static_catalog_source(tmp_path: Path, detector) -> None:
    add_watch_site()
    cat = tmp_path / "catalog"
    (cat / "items").mkdir(parents=True)
    links = []
    for i, n in enumerate((20, 7)):
        block_pass(cat / "items" / f"s{i}.tif", n, T0)
        (cat / "items" / f"s{i}.json").write_text(json.dumps(stac_item(f"s{i}", f"s{i}.tif", T0 + timedelta(days=i))))
        links.append({"rel": "item", "href": f"./items/s{i}.json", "type": "application/geo+json"})
    (cat / "items" / "broken.json").write_text("{not json")
    links.append({"rel": "item", "href": "./items/broken.json"})
    (cat / "catalog.json").write_text(json.dumps({"type": "Catalog", "stac_version": "1.0.0", "id": "c", "description": "d", "links": links}))
    from watch_support import _Proc

    http = _Proc("_http_stub.py", cat)  # the same catalog over HTTP: items and COG assets fetched from it
    try:
        for i, url in enumerate((str(cat / "catalog.json"), f"{http.url}/catalog.json")):
            cfg = _config([{"type": "stac-catalog", "url": url}], _channels(tmp_path))
            with open_store(f"sqlite:///{tmp_path / f'w{i}.db'}") as store:
                res = Watcher(cfg, store, detector=detector).run_once()
                passes = store.list_passes("watchbase")
                assert [len(p.detections) for p in passes] == [20, 7]
                assert passes[0].scene_path == (str(cat / "items" / "s0.tif") if i == 0 else f"{http.url}/items/s0.tif")
                assert res.failed == ["broken"]
                assert ("s1", "indicator-fired", "aircraft-count-drop") in _kinds(store)
                assert Watcher(cfg, store, detector=detector).run_once().passes == []
    finally:
        http.close()
    assert any(r.startswith("GET /items/s1.tif bytes=") for r in (cat / "requests.log").read_text().splitlines())


def test_quiet_hours_end() -> None:
    q = QuietHours(start="22:00", end="06:00", tz="Europe/Berlin")
    assert q.end_of(datetime(2024, 5, 4, 12, 0, tzinfo=UTC)) is None
    assert q.end_of(datetime(2024, 5, 4, 21, 30, tzinfo=UTC)) == datetime(2024, 5, 5, 4, 0, tzinfo=UTC)  # 23:30 CEST → 06:00 CEST
    assert q.end_of(datetime(2024, 5, 5, 3, 0, tzinfo=UTC)) == datetime(2024, 5, 5, 4, 0, tzinfo=UTC)


def test_config_errors_name_the_place(tmp_path: Path) -> None:
    from sitewatch.watch import WatchConfigError

    p = tmp_path / "w.yaml"
    p.write_text("sites:\n  - site: hmeimim\n    sources: [{type: ftp, url: x}]\n")
    with pytest.raises(WatchConfigError, match=r"w\.yaml: sites\.0\.sources\.0"):
        load_config(p)
    p.write_text("sites:\n  - site: hmeimim\n    sources: [{type: folder, path: /x}]\n    rules: {channels: [pager]}\n")
    with pytest.raises(WatchConfigError, match="unknown channel"):
        load_config(p)
    with pytest.raises(WatchConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    assert os.environ.get("SW_TEST_HOOK_SECRET") is None


def test_docs_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "watch.md").read_text()
    block = re.search(r"```yaml\n(# watch\.yaml\n.*?)```", text, re.S).group(1)
    cfg = WatchConfig.model_validate(yaml.safe_load(block))
    assert [s.type for s in cfg.sites[0].sources] == ["folder", "stac-api", "stac-catalog"]
    assert [c.name for c in cfg.channels] == ["log", "feed", "ops", "desk"]
    assert cfg.retry.delay_s(1) == 60 and cfg.retry.delay_s(4) == 480 and cfg.retry.delay_s(10) == 3600


def test_alerts_served_as_json_and_atom(tmp_path: Path, store_url: str) -> None:
    pytest.importorskip("uvicorn")
    from fastapi.testclient import TestClient

    from sitewatch.api import ApiSettings, create_app
    from sitewatch.store.watchstate import DONE, ItemRecord, NewAlert

    add_watch_site()
    with open_store(store_url) as store:
        ledger = WatchLedger(store)
        for i, subject in enumerate(("aircraft-count-drop", "heavy-airlift-present")):
            rec = ItemRecord("watchbase", "folder:/in", f"s{i}.tif", DONE, pass_id=None)
            ledger.record_done(rec, [NewAlert("indicator-fired", subject, f"watchbase: {subject} fires", {"evidence": {"report": None}})], {})
    with TestClient(create_app(store_url, ApiSettings(token=None))) as client:
        got = client.get("/api/alerts", params={"site": "watchbase"}).json()
        assert [a["subject"] for a in got] == ["heavy-airlift-present", "aircraft-count-drop"] and got[0]["item"] == "s1.tif"
        r = client.get("/api/alerts.atom", params={"limit": 1})
        assert r.status_code == 200 and r.headers["content-type"] == "application/atom+xml"
        entries = ET.fromstring(r.content).findall("{http://www.w3.org/2005/Atom}entry")
        assert [e.find("{http://www.w3.org/2005/Atom}title").text for e in entries] == ["watchbase: heavy-airlift-present fires"]
        assert client.get("/api/alerts", params={"site": "atlantis"}).status_code == 404


def test_daemon_goes_on_after_a_failed_cycle(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sitewatch.errors import StoreError
    from sitewatch.watch import CycleResult

    add_watch_site()
    (tmp_path / "in").mkdir()
    cfg = _config([{"type": "folder", "path": str(tmp_path / "in")}], [{"type": "log"}])
    seen: list[CycleResult] = []
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        w = Watcher(cfg, store, detector=object())
        calls = []
        real = w.run_once

        def once() -> CycleResult:
            calls.append(1)
            if len(calls) == 1:
                raise StoreError("store sqlite:///x.db: cannot read watch items: disk I/O error")
            w.stop.set()
            return real()

        w.run_once = once
        w.run_forever(0.01, on_cycle=seen.append)
    assert len(calls) == 2 and len(seen) == 1 and seen[0].stopped
    assert any("watch cycle failed: store sqlite:///x.db" in r.getMessage() for r in caplog.records)


def test_an_unexpected_error_fails_one_item_only(tmp_path: Path, detector, caplog: pytest.LogCaptureFixture) -> None:
    add_watch_site()
    scenes = tmp_path / "in"
    scenes.mkdir()
    for i, (name, n) in enumerate((("a.tif", 20), ("b.tif", 9), ("c.tif", 20))):
        block_pass(scenes / name, n, T0 + timedelta(days=i))

    class Flaky:
        label = detector.label

        def detect(self, scene, **kw):  # noqa: ANN001, ANN003
            if scene.path.endswith("b.tif"):
                raise RuntimeError("tile 3 exploded")
            return detector.detect(scene, **kw)

    cfg = _config([{"type": "folder", "path": str(scenes), "settle_s": 0}], [{"type": "log"}])
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        res = Watcher(cfg, store, detector=Flaky()).run_once()
        assert res.failed == ["b.tif"] and len(res.passes) == 2
        (fail,) = status(store)["failures"]
        assert fail["status"] == "retry" and fail["error"] == "internal error (RuntimeError: tile 3 exploded)"
        later = Watcher(cfg, store, detector=detector, clock=lambda: datetime.now(UTC) + timedelta(minutes=2)).run_once()
        assert later.failed == [] and len(later.passes) == 1 and len(store.list_passes("watchbase")) == 3
