"""Writers that wait: concurrent ``scan`` and ``claims add`` processes on one store lose nothing and never fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from detect_support import write_block_model
from sitewatch.store import open_store
from sitewatch.store.store import make_engine
from test_scale import SITE, block_scene
from test_store import pg_database  # noqa: F401 - fixture

N_SCANS = 4  # concurrent scan processes
SCENES_PER_SCAN = 3
N_CLAIMS = 2  # concurrent claims processes
REPORT = "Satellite images show {n} Il-76 transport aircraft left the airbase on 3 March 2024, officials said."


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[Path]], list[Path]]:
    """The block model, distinct scenes for each scan process, and distinct text reports."""
    d = tmp_path_factory.mktemp("concurrency")
    model = write_block_model(d / "block.onnx")
    scenes = [[block_scene(d / f"p{i}s{j}.tif", seed=10 * i + j) for j in range(SCENES_PER_SCAN)] for i in range(N_SCANS)]
    reports = []
    for k in range(N_CLAIMS):
        reports.append(d / f"report{k}.txt")
        reports[-1].write_text(REPORT.format(n=k + 2))
    return model, scenes, reports


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sitewatch.cli.main", *args]


def _round(url: str, workload: tuple[Path, list[list[Path]], list[Path]]) -> None:
    """Start every writer at once on an empty store; check that each exits 0 and everything is stored once."""
    model, scenes, reports = workload
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen(_cli("scan", *map(str, s), "--site", "testbase", "--model", str(model), "--store", url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for s in scenes]  # fmt: skip
    procs += [subprocess.Popen(_cli("claims", "add", str(r), "--source", f"wire{k}", "--published", "2024-03-04", "--store", url),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for k, r in enumerate(reports)]  # fmt: skip
    results = [(p.args, *p.communicate(timeout=600), p.returncode) for p in procs]
    for args, _out, err, code in results:
        assert code == 0, f"{args[3:5]} exited {code}: {err.strip()[-500:]}"
        assert "locked" not in err.lower()
    with open_store(url) as store:
        passes = store.list_passes("testbase")
        docs = store.list_documents()
    want = sorted(str(s.resolve()) for ss in scenes for s in ss)
    assert sorted(p.scene_path for p in passes) == want  # every pass stored once, none lost
    assert all(len(p.detections) > 0 for p in passes)
    assert sorted(d["source"] for d in docs) == [f"wire{k}" for k in range(N_CLAIMS)]


@pytest.fixture
def site_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test site as a user site in this test's SITEWATCH_HOME (subprocesses inherit it)."""
    bbox = ",".join(f"{v:.6f}" for v in SITE.aoi.bounds)
    r = subprocess.run(_cli("sites", "add", "testbase", "--kind", "airbase", "--bbox", bbox), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _sqlite_rounds(tmp_path: Path, workload, rounds: int) -> None:  # noqa: ANN001
    for i in range(rounds):
        _round(f"sqlite:///{tmp_path / f'round{i}.db'}", workload)


def test_concurrent_scans_and_claims_on_sqlite(site_home, workload, tmp_path: Path) -> None:
    _sqlite_rounds(tmp_path, workload, rounds=2)


@pytest.mark.slow
def test_concurrent_scans_and_claims_on_sqlite_20_rounds(site_home, workload, tmp_path: Path) -> None:
    _sqlite_rounds(tmp_path, workload, rounds=20)


def _empty(url: str) -> None:
    eng = make_engine(url)
    with eng.begin() as conn:
        names = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'spatial_ref_sys'")).scalars()
        for name in list(names):
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    eng.dispose()


@pytest.mark.postgres
def test_concurrent_scans_and_claims_on_postgis(site_home, workload, pg_database: str) -> None:  # noqa: F811
    for _ in range(2):
        _empty(pg_database)
        _round(pg_database, workload)


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_scans_and_claims_on_postgis_20_rounds(site_home, workload, pg_database: str) -> None:  # noqa: F811
    for _ in range(20):
        _empty(pg_database)
        _round(pg_database, workload)
