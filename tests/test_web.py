"""The web dashboard: packaged static files with no CDN, and a real browser (Playwright driving
Debian's headless Chromium) on a live server: map, imagery tiles, detection polygons, a popup."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_support import fill_store
from sitewatch.api import ApiSettings, create_app
from sitewatch.api.web import STATIC

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_pages_and_vendored_files_are_served_from_the_package(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    fill_store(url, tmp_path)
    with TestClient(create_app(url, ApiSettings(home=tmp_path))) as c:
        assert c.get("/sites").status_code == 200 and "sitewatch" in c.get("/sites/hmeimim").text
        js = c.get("/static/vendor/leaflet/leaflet.js")
        assert js.status_code == 200 and "Leaflet 1.9.4" in js.text[:200]
        assert c.get("/").headers.get("location", "/sites") == "/sites" or c.get("/").status_code == 200
    assert (STATIC / "vendor" / "leaflet" / "LICENSE").read_text().startswith("BSD 2-Clause")
    # nothing is loaded from another host at run time
    for page in STATIC.glob("*.*"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), page.name
        assert "fetch(\"http" not in text and "fetch('http" not in text, page.name


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    uvicorn = pytest.importorskip("uvicorn")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    a, b = fill_store(url, tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(url, ApiSettings(home=tmp_path)), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < end, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", a, b
    server.should_exit = True
    thread.join(timeout=30)


def test_site_page_in_a_browser(live_server, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    from PIL import Image

    base, a, b = live_server
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/sites/hmeimim")
        page.wait_for_selector(f'#map[data-loaded-pass="{b}"]', timeout=60_000)
        assert page.locator("path.sw-det").count() == 2  # pass B: one aircraft, one ship
        page.wait_for_function("document.querySelectorAll('#map img.leaflet-tile-loaded').length > 0", timeout=60_000)
        # colour by change: the aircraft remained (yellow), the ship arrived (green)
        strokes = sorted(page.locator("path.sw-det").evaluate_all("els => els.map(e => e.getAttribute('stroke'))"))
        assert strokes == ["#00dc3c", "#ffc800"]
        assert "remained 1" in page.inner_text("#legend") and "arrived 1" in page.inner_text("#legend")
        shot = np.asarray(Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")).astype(int)
        assert shot.std() > 10  # not blank
        grey = (np.abs(shot - 90) <= 3).all(axis=2).sum()  # the scene's ground (value 90) shows through the tiles
        assert grey > 1000
        page.locator("path.sw-det[stroke='#ffc800']").click(force=True)
        popup = page.wait_for_selector(".leaflet-popup .popup", timeout=20_000)
        text = popup.inner_text()
        assert "aircraft" in text and "remained" in text
        assert "20.5 ± 0.8 m × 14.2 ± 0.6 m" in text and "Su-24 Fencer" in text and "60%" in text
        page.wait_for_function("document.querySelector('.leaflet-popup img').naturalWidth > 0", timeout=30_000)
        page.screenshot(path=os.environ.get("SITEWATCH_TEST_SCREENSHOT", str(tmp_path / "site.png")))
        assert not errors, errors
        browser.close()


def test_no_cdn_pages(tmp_path: Path) -> None:
    """FastAPI's own /docs and /redoc fetch scripts from a CDN: they are off; the OpenAPI JSON stays."""
    with TestClient(create_app(f"sqlite:///{tmp_path / 'store.db'}", ApiSettings(home=tmp_path))) as c:
        assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").json()["info"]["title"] == "sitewatch"
