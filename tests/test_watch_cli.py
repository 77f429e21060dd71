"""``sitewatch watch``: --once, --status, the daemon's graceful stop, and kill -9 in the middle of a cycle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from detect_support import write_block_model
from sitewatch.cli.main import main
from sitewatch.store import open_store
from sitewatch.store.watchstate import WatchLedger
from watch_support import WebhookReceiver, add_watch_site, block_pass

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SECRET = "kill9-secret"

# Runs one watch cycle; with "scan" it hangs while detecting the second item, with "commit" it hangs
# INSIDE the transaction that marks the second item done and stores its alerts (pass already stored).
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import event
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.store import open_store
    from sitewatch.store.watchstate import WatchLedger
    from sitewatch.watch import Watcher, load_config

    cfg_path, url, pause = sys.argv[1:4]
    cfg = load_config(cfg_path)
    store = open_store(url)
    inner = OnnxDetector(cfg.model)
    scans = []

    class Pausing:
        label = inner.label
        def detect(self, scene, **kw):
            scans.append(scene.path)
            if pause == "scan" and len(scans) == 2:
                print("PAUSED", flush=True); time.sleep(120)
            return inner.detect(scene, **kw)

    done = WatchLedger.record_done
    def record_done(self, rec, alerts, channels):
        if pause == "commit" and rec.item_id == "b.tif":
            @event.listens_for(store.engine, "commit")
            def _hang(conn):
                print("PAUSED", flush=True); time.sleep(120)
        return done(self, rec, alerts, channels)
    WatchLedger.record_done = record_done
    Watcher(cfg, store, detector=Pausing()).run_once()
    print("DONE", flush=True)
    """
)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET.encode())
    yield r
    r.close()


@pytest.fixture
def watch_setup(tmp_path: Path, hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Three passes in a folder (20, 8, 20 aircraft), a config with log, feed and webhook; returns (config, folder)."""
    monkeypatch.setenv("SW_HOOK_SECRET", SECRET)
    add_watch_site()
    folder = tmp_path / "incoming"
    folder.mkdir()
    for i, (name, n) in enumerate((("a.tif", 20), ("b.tif", 8), ("c.tif", 20))):
        block_pass(folder / name, n, T0 + timedelta(days=3 * i))
    cfg = {
        "model": str(write_block_model(tmp_path / "block.onnx")),
        "read_pixels": False,
        "sites": [{"site": "watchbase", "sources": [{"type": "folder", "path": str(folder), "settle_s": 0}],
                   "rules": {"hypotheses": False}}],
        "channels": [{"type": "log"}, {"type": "atom", "path": str(tmp_path / "feed.atom")},
                     {"type": "webhook", "url": hook.url, "secret_env": "SW_HOOK_SECRET", "retries": 0}],
    }  # fmt: skip
    path = tmp_path / "watch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, folder


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _state(url: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    with open_store(url) as store:
        scenes = [Path(p.scene_path).name for p in store.list_passes("watchbase")]
        alerts = [(a.item_id, a.kind, a.subject) for a in WatchLedger(store).alerts("watchbase")]
    return scenes, sorted(alerts)


def test_once_status_and_exit_codes(tmp_path: Path, watch_setup: tuple[Path, Path], hook: WebhookReceiver,
                                    capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    cfg, folder = watch_setup
    url = f"sqlite:///{tmp_path / 'w.db'}"
    code, out, _ = _cli(["watch", "--once", "--config", str(cfg), "--store", url], capsys)
    assert code == 0 and "watch cycle: 3 new pass(es)" in out
    scenes, alerts = _state(url)
    assert scenes == ["a.tif", "b.tif", "c.tif"]
    assert ("b.tif", "indicator-fired", "aircraft-count-drop") in alerts and ("c.tif", "indicator-cleared", "aircraft-count-drop") in alerts
    assert len(hook.received) == len(alerts)
    (folder / "broken.tif").write_bytes(b"not a tiff at all")
    code, out, _ = _cli(["watch", "--once", "--config", str(cfg), "--store", url], capsys)
    assert code == 1 and "1 item(s) failed" in out
    code, out, _ = _cli(["watch", "--status", "--store", url], capsys)
    assert code == 0 and "broken.tif" in out and "Failed items" in out
    code, out, _ = _cli(["watch", "--status", "--json", "--store", url], capsys)
    st = json.loads(out)
    assert st["sources"][0]["items"] == {"done": 3, "failed": 1}
    (fail,) = st["failures"]
    assert fail["item"] == "broken.tif" and "not an image" in fail["error"] and fail["status"] == "failed"
    code, _, err = _cli(["watch", "--once", "--every", "5m", "--config", str(cfg)], capsys)
    assert code == 2 and "exactly one of" in err
    code, _, err = _cli(["watch", "--every", "soon", "--config", str(cfg)], capsys)
    assert code == 2 and "'soon': expected a duration" in err
    code, _, err = _cli(["watch", "--once", "--config", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and err.strip().endswith("watch configuration not found (see docs/watch.md)") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("pause", [pytest.param("scan", marks=pytest.mark.slow), "commit"])
def test_kill9_mid_cycle_then_restart(tmp_path: Path, watch_setup: tuple[Path, Path], hook: WebhookReceiver, pause: str,
                                      capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    cfg, _ = watch_setup
    ref_url = f"sqlite:///{tmp_path / 'ref.db'}"
    assert _cli(["watch", "--once", "--config", str(cfg), "--store", ref_url], capsys)[0] == 0
    reference = _state(ref_url)
    hook.received.clear()
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    script = tmp_path / "cycle.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(cfg), url, pause], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 180
    line = ""
    while "PAUSED" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "watch cycle ended early"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    scenes, alerts = _state(url)
    assert scenes == (["a.tif"] if pause == "scan" else ["a.tif", "b.tif"])  # b's pass stored, its record not committed
    assert alerts == [a for a in reference[1] if a[0] == "a.tif"] and hook.received == []
    code, out, _ = _cli(["watch", "--once", "--config", str(cfg), "--store", url], capsys)
    assert code == 0 and "watch cycle: 2 new pass(es)" in out
    assert _state(url) == reference  # no duplicate pass, no duplicate alert, nothing skipped
    assert len(hook.received) == len(reference[1]) == len({r["alert"] for r in hook.received})
    with open_store(url) as store:
        assert sorted(r.item_id for r in WatchLedger(store).items(status="done")) == ["a.tif", "b.tif", "c.tif"]


def test_daemon_stops_on_sigterm(tmp_path: Path, watch_setup: tuple[Path, Path]) -> None:
    cfg, _ = watch_setup
    url = f"sqlite:///{tmp_path / 'd.db'}"
    cmd = [sys.executable, "-m", "sitewatch.cli.main", "watch", "--every", "1s", "--config", str(cfg), "--store", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 180
        cycles = 0
        while cycles < 1 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
            cycles += line.startswith("watch cycle:")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "watch stopped" in out
    assert _state(url)[0] == ["a.tif", "b.tif", "c.tif"]
