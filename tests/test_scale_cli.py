"""``sitewatch scan --workers N``: passes stored as by a plain scan, bad scenes reported one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sitewatch.scale
import sitewatch.sites
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.errors import SiteError
from sitewatch.store import open_store
from test_scale import SITE, _same_pass, _single, block_model, block_scene  # noqa: F401 - block_model: fixture
from test_scan_cli import run as run_cli


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> dict:
    def get_site(name: str):  # noqa: ANN202
        if name != SITE.name:
            raise SiteError(f"unknown site '{name}'; known: {SITE.name}")
        return SITE

    monkeypatch.setattr(sitewatch.sites, "get_site", get_site)
    monkeypatch.setattr(sitewatch.scale, "LOCAL_PROCESSES", False)  # worker threads: quicker to start
    return {"url": f"sqlite:///{tmp_path / 'cli.db'}", "model": str(request.getfixturevalue("block_model"))}


def test_workers_option_stores_what_a_plain_scan_stores(tmp_path: Path, env: dict, capsys) -> None:
    scenes = [str(block_scene(tmp_path / f"s{i}.tif", seed=10 + i)) for i in range(3)]
    code, out, err = run_cli(["scan", *scenes, "--site", "testbase", "--model", env["model"], "--workers", "2", "--store", env["url"], "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert sorted(r["scene"] for r in rows) == sorted(scenes) and all(r["detections"] > 0 for r in rows)
    with open_store(env["url"]) as store:
        stored = {p.scene_path: p for p in store.list_passes("testbase")}
    for s in scenes:
        _same_pass(stored[s], _single(Path(s), OnnxDetector(env["model"]), f"sqlite:///{tmp_path / 'ref.db'}"))


def test_bad_scene_in_batch_is_one_line_others_stored_exit_nonzero(tmp_path: Path, env: dict, capsys) -> None:
    good = str(block_scene(tmp_path / "good.tif", seed=1))
    bad = tmp_path / "bad.tif"
    bad.write_text("not an image")
    code, out, err = run_cli(["scan", str(bad), good, "--site", "testbase", "--model", env["model"], "--workers", "2", "--store", env["url"]], capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len([ln for ln in lines if "bad.tif" in ln and ln.startswith("error: ") and "scenes failed" not in ln]) == 1
    assert lines[-1] == f"error: 1 of 2 scenes failed ({bad}); 1 stored"
    assert "good.tif" in out and "aircraft" in out
    with open_store(env["url"]) as store:
        assert [p.scene_path for p in store.list_passes("testbase")] == [good]


def test_workers_and_scheduler_together_is_a_usage_error(tmp_path: Path, env: dict, capsys) -> None:
    code, _, err = run_cli(["scan", "x.tif", "--site", "testbase", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], capsys)
    assert code == 2 and "not both" in err
