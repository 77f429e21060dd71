"""``sitewatch compare`` and ``sitewatch timeline`` on a store with two synthetic georeferenced passes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rasterio
from tests.test_compare_change import _pass, scenario


@pytest.fixture()
def store_with_pair(tmp_path: Path) -> str:
    from sitewatch.store import open_store

    a, b, dets_a, dets_b = scenario()
    pa = _pass(tmp_path / "a.tif", a, dets_a, 500_000.0)
    pb = _pass(tmp_path / "b.tif", b, dets_b, 500_000.0)
    pa.id = pb.id = None
    pa.acquired, pb.acquired = datetime(2024, 12, 10, tzinfo=UTC), datetime(2025, 1, 5, tzinfo=UTC)
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    with open_store(url) as store:
        store.save_pass(pa)
        store.save_pass(pb)
    return url


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sitewatch.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_compare_cli_json_and_change_map(store_with_pair: str, tmp_path: Path) -> None:
    out = tmp_path / "change.tif"
    r = run("compare", "test", "--store", store_with_pair, "--json", "--map", str(out))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["counts"]["aircraft"]["remained"] == 1 and d["counts"]["aircraft"]["arrived"] == 1
    assert d["sentence"].startswith("Since 2024-12-10:")
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32637 and ds.read(1).max() == 255


def test_compare_cli_picks_passes_by_date_and_refuses_clearly(store_with_pair: str) -> None:
    r = run("compare", "test", "--store", store_with_pair, "--from", "2024-12-10", "--to", "2025-01-05")
    assert r.returncode == 0, r.stderr
    assert "aircraft: 2 → 2" in r.stdout and "(2024-12-10) → pass" in r.stdout
    r = run("compare", "test", "--store", store_with_pair, "--from", "2024-12-11", "--to", "2025-01-05")
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: only pass 2 (2025-01-05) of site 'test' lies from 2024-12-11 to 2025-01-05; comparing needs two: widen the span")
    r = run("compare", "test", "--store", store_with_pair, "--to", "2024-01-01")
    assert r.returncode == 2 and r.stderr.strip() == "error: no pass of site 'test' to 2024-01-01 (its passes run from 2024-12-10 to 2025-01-05)"
    r = run("compare", "test", "--store", store_with_pair, "--from", "1", "--to", "1")
    assert r.returncode == 2 and "only pass 1 (2024-12-10)" in r.stderr and "Traceback" not in r.stderr


def test_timeline_cli(store_with_pair: str) -> None:
    r = run("timeline", "test", "--store", store_with_pair, "--json")
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert [e["counts"] for e in entries] == [{"aircraft": 2}, {"aircraft": 2}]
    assert entries[0]["changes"] is None
    assert entries[1]["changes"]["aircraft"] == {"arrived": 1, "departed": 1, "moved": 0, "remained": 1}


def test_compare_change_map_not_replaced_without_overwrite(store_with_pair: str, tmp_path: Path) -> None:
    out = tmp_path / "change.tif"
    out.write_text("mine")
    r = run("compare", "test", "--store", store_with_pair, "-o", str(out))
    assert r.returncode == 2 and r.stderr.strip() == f"error: {out}: exists; use --overwrite to replace it"
    assert out.read_text() == "mine"
    r = run("compare", "test", "--store", store_with_pair, "-o", str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.nodata == 255
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left
