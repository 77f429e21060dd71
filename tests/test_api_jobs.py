"""Scan jobs of the web API: paths under the imagery roots only, uploads (size limit, images only),
progress, failure without a stored pass, and jobs interrupted by a server restart."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import StubDetector, write_scene
from sitewatch.api import ApiSettings, create_app
from sitewatch.store import open_store

TOKEN = "job-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SITE = {"name": "test-apron", "kind": "airbase", "bbox": [35.945, 35.399, 35.947, 35.401]}


@pytest.fixture
def env(tmp_path: Path) -> dict:
    roots = tmp_path / "imagery"
    (roots / "pleiades").mkdir(parents=True)
    write_scene(roots / "pleiades" / "a.tif")
    write_scene(tmp_path / "secret.tif")
    (tmp_path / "notes.txt").write_text("not an image\n")
    return {"tmp": tmp_path, "root": roots, "url": f"sqlite:///{tmp_path / 'store.db'}", "jobs": tmp_path / "jobs"}


def client(env: dict, detector: StubDetector | None = None, **settings) -> TestClient:
    s = ApiSettings(home=env["tmp"] / "home", token=TOKEN, imagery_roots=[env["root"]], jobs_dir=env["jobs"], **settings)
    c = TestClient(create_app(env["url"], s, detector_factory=lambda: detector or StubDetector([(50, 50, "aircraft")])))
    c.headers.update(AUTH)
    return c


def wait(c: TestClient, job_id: str, timeout_s: float = 60) -> dict:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']}")


def n_passes(env: dict) -> int:
    with open_store(env["url"]) as store:
        return sum(len(store.list_passes(s)) for s in store.sites())


def test_scan_by_path_stores_a_pass(env: dict) -> None:
    with client(env) as c:
        assert c.post("/api/sites", json=SITE).status_code == 201
        r = c.post("/api/sites/test-apron/scans", json={"scene": "pleiades/a.tif", "acquired": "2024-03-01T08:30:00Z"})
        assert r.status_code == 202, r.text
        job = wait(c, r.json()["id"])
        assert (job["state"], job["progress"], job["tiles_done"], job["tiles_total"]) == ("done", 1.0, 4, 4)
        p = c.get(f"/api/passes/{job['pass_id']}").json()
        assert (p["site"], p["detections"], p["acquired"][:10]) == ("test-apron", 1, "2024-03-01")
        assert p["scene_path"] == str((env["root"] / "pleiades" / "a.tif").resolve())
        assert [j["id"] for j in c.get("/api/jobs").json()] == [job["id"]]


@pytest.mark.parametrize(
    ("scene", "status"),
    [
        ("../secret.tif", 403),
        ("pleiades/../../secret.tif", 403),
        ("{tmp}/secret.tif", 403),
        ("/etc/passwd", 403),
        ("pleiades/link.tif", 403),  # a symlink inside the root pointing out of it
        ("pleiades/missing.tif", 404),
        ("{root}/pleiades/missing.tif", 404),
    ],
)
def test_path_traversal_is_refused(env: dict, scene: str, status: int) -> None:
    (env["root"] / "pleiades" / "link.tif").symlink_to(env["tmp"] / "secret.tif")
    with client(env) as c:
        c.post("/api/sites", json=SITE)
        r = c.post("/api/sites/test-apron/scans", json={"scene": scene.format(tmp=env["tmp"], root=env["root"])})
        assert r.status_code == status, r.text
        assert c.get("/api/jobs").json() == []
    assert n_passes(env) == 0


def test_scanning_by_path_needs_roots_and_token(env: dict) -> None:
    s = ApiSettings(home=env["tmp"] / "home", token=TOKEN, jobs_dir=env["jobs"])
    with TestClient(create_app(env["url"], s)) as c:
        r = c.post("/api/sites/hmeimim/scans", json={"scene": str(env["root"] / "pleiades" / "a.tif")}, headers=AUTH)
        assert r.status_code == 403 and "imagery roots" in r.json()["detail"]
        assert c.post("/api/sites/hmeimim/scans", json={"scene": "pleiades/a.tif"}).status_code == 401


def test_upload_scan(env: dict) -> None:
    data = (env["root"] / "pleiades" / "a.tif").read_bytes()
    with client(env) as c:
        c.post("/api/sites", json=SITE)
        r = c.post("/api/sites/test-apron/scans/upload", params={"filename": "../../x/pass 1.tif"}, content=data,
                   headers={"Content-Type": "image/tiff"})  # fmt: skip
        assert r.status_code == 202, r.text
        job = wait(c, r.json()["id"])
        assert job["state"] == "done" and job["source"] == "upload"
        stored = Path(c.get(f"/api/passes/{job['pass_id']}").json()["scene_path"])
        assert stored.parent == env["jobs"] / "uploads" / job["id"] and stored.name == "pass_1.tif"


def test_oversized_and_non_image_uploads_leave_nothing(env: dict) -> None:
    data = (env["root"] / "pleiades" / "a.tif").read_bytes()
    with client(env, max_upload_mb=len(data) / 2 / 2**20) as c:
        c.post("/api/sites", json=SITE)
        r = c.post("/api/sites/test-apron/scans/upload", content=data, headers={"Content-Type": "image/tiff"})
        assert r.status_code == 413 and r.json()["error"] == "UploadTooLargeError"

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        r = c.post("/api/sites/test-apron/scans/upload", content=chunks(), headers={"Content-Type": "image/tiff"})
        assert r.status_code == 413
    with client(env) as c:
        text = (env["tmp"] / "notes.txt").read_bytes()
        r = c.post("/api/sites/test-apron/scans/upload", content=text, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 415 and r.json()["error"] == "UnsupportedMediaError"
        r = c.post("/api/sites/test-apron/scans/upload", content=text, headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert c.post("/api/sites/test-apron/scans/upload", content=b"", headers={"Content-Type": "image/png"}).status_code == 415
        assert c.get("/api/jobs").json() == []
    assert not any((env["jobs"] / "uploads").iterdir()) if (env["jobs"] / "uploads").exists() else True
    assert n_passes(env) == 0


def test_a_scan_that_dies_half_way_stores_nothing(env: dict) -> None:
    with client(env, StubDetector([(50, 50, "aircraft")], tiles=4, fail_at=2)) as c:
        c.post("/api/sites", json=SITE)
        job = wait(c, c.post("/api/sites/test-apron/scans", json={"scene": "pleiades/a.tif"}).json()["id"])
        assert job["state"] == "failed" and job["pass_id"] is None and "RuntimeError" in job["error"]
    assert n_passes(env) == 0


def test_jobs_interrupted_by_a_restart_are_marked_failed(env: dict) -> None:
    now = datetime.now(UTC).isoformat()
    env["jobs"].mkdir()
    upload = env["jobs"] / "uploads" / ("b" * 32)
    upload.mkdir(parents=True)
    (upload / "scene.tif").write_bytes(b"partial")
    records = {
        "a" * 32: {"source": "path", "state": "running", "progress": 0.5},
        "b" * 32: {"source": "upload", "state": "queued", "progress": 0.0},
        "c" * 32: {"source": "path", "state": "done", "progress": 1.0, "pass_id": 7},
    }
    for job_id, rec in records.items():
        body = {"id": job_id, "site": "hmeimim", "scene": "x.tif", "created": now, "updated": now, **rec}
        (env["jobs"] / f"{job_id}.json").write_text(json.dumps(body))
    with client(env) as c:
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()}
    assert jobs["a" * 32]["state"] == jobs["b" * 32]["state"] == "failed"
    assert "interrupted by a server restart" in jobs["a" * 32]["error"]
    assert jobs["c" * 32]["state"] == "done" and jobs["c" * 32]["error"] is None
    assert not upload.exists()
    assert n_passes(env) == 0


@pytest.mark.slow
def test_server_killed_during_a_scan(env: dict) -> None:
    """A real server (the bundled detector) killed with SIGKILL while a scan runs: after the restart
    the job is failed and the store holds no pass of it."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx
    import numpy as np
    import rasterio
    from affine import Affine

    big = env["root"] / "big.tif"
    with rasterio.open(big, "w", driver="GTiff", width=3000, height=3000, count=3, dtype="uint8", crs="EPSG:4326",
                       transform=Affine(1e-5, 0, 35.945, 0, -1e-5, 35.401)) as dst:  # fmt: skip
        dst.write(np.random.default_rng(1).integers(60, 200, (3, 3000, 3000), dtype=np.uint8))
    repo = Path(__file__).resolve().parents[1]
    envvars = {**os.environ, "PYTHONPATH": str(repo / "src"), "SITEWATCH_HOME": str(env["tmp"] / "home"),
               "SITEWATCH_API_TOKEN": TOKEN, "SITEWATCH_API_JOBS_DIR": str(env["jobs"])}  # fmt: skip

    def start() -> tuple[subprocess.Popen, str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "sitewatch.cli.main", "serve", "--store", env["url"], "--port", str(port),
                                 "--imagery-root", str(env["root"])], env=envvars, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                if httpx.get(f"{base}/api/health", headers=AUTH, timeout=2).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                time.sleep(0.3)
        proc.kill()
        raise AssertionError("server did not start")

    proc, base = start()
    try:
        site = {"name": "big-apron", "kind": "airbase", "bbox": [35.945, 35.371, 35.975, 35.401]}
        assert httpx.post(f"{base}/api/sites", json=site, headers=AUTH).status_code == 201
        job = httpx.post(f"{base}/api/sites/big-apron/scans", json={"scene": "big.tif"}, headers=AUTH, timeout=60).json()
        end = time.monotonic() + 300
        while httpx.get(f"{base}/api/jobs/{job['id']}", headers=AUTH).json()["tiles_done"] < 1:
            assert time.monotonic() < end, "the scan never started"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((env["jobs"] / f"{job['id']}.json").read_text())["state"] == "running"
    proc, base = start()
    try:
        after = httpx.get(f"{base}/api/jobs/{job['id']}", headers=AUTH).json()
        assert after["state"] == "failed" and "restart" in after["error"] and after["pass_id"] is None
        assert httpx.get(f"{base}/api/sites/big-apron/passes", headers=AUTH).json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert n_passes(env) == 0
