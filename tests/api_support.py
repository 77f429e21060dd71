"""A small store with exact answers for the web API tests: two georeferenced passes of Hmeimim.

The scene is a 200 x 200 px RGB GeoTIFF in EPSG:4326 with 1e-5° pixels at the north-west corner
(35.945 E, 35.401 N). Pass A holds two aircraft and a helicopter; pass B, three days later, one of the
aircraft (same place) and a new ship. So A → B: 1 aircraft remained, 1 departed, the helicopter
departed, the ship arrived.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from ci_support import missing
from sitewatch.store import open_store
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox, Pass

PG_URL = os.environ.get("SITEWATCH_TEST_PG_URL")
TRANSFORM = Affine(1e-5, 0.0, 35.945, 0.0, -1e-5, 35.401)
SU24 = (Candidate("su-24", "Su-24 Fencer", "strike", 0.6), Candidate("unknown", "unknown", "unknown", 0.2))


def write_scene(path: Path) -> Path:
    """The test scene: grey ground with bright rectangles where the objects are."""
    rgb = np.full((3, 200, 200), 90, dtype=np.uint8)
    rgb[:, 40:60, 40:60] = 230
    with rasterio.open(path, "w", driver="GTiff", width=200, height=200, count=3, dtype="uint8", crs="EPSG:4326",
                       transform=TRANSFORM) as dst:  # fmt: skip
        dst.write(rgb)
    return path


def detection(cx: float, cy: float, category: str, candidates: tuple[Candidate, ...] = ()) -> Detection:
    box = OrientedBox.make(cx, cy, 20.0, 14.0, 30.0)
    footprint = tuple(tuple(float(v) for v in TRANSFORM * (x, y)) for x, y in box.corners())
    m = Measurement(20.5, 14.2, 0.8, 0.6, 30.0, 2.0, 1.0)
    return Detection(box, category, 0.9, footprint=footprint, measurement=m, candidates=candidates)


def make_pass(scene: Path, when: datetime, dets: list[Detection]) -> Pass:
    x0, y0 = TRANSFORM * (0, 0)
    x1, y1 = TRANSFORM * (200, 200)
    fp = f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"
    return Pass(site="hmeimim", scene_path=str(scene), acquired=when, footprint_wkt=fp, aoi_coverage=0.01, gsd_m=1.0,
                model="test-det 1.0", crs="EPSG:4326", transform=tuple(TRANSFORM)[:6], detections=dets)  # fmt: skip


def fill_store(url: str, folder: Path) -> tuple[int, int]:
    """Store passes A and B (see module docstring); return their ids."""
    a_scene = write_scene(folder / "a.tif")
    b_scene = write_scene(folder / "b.tif")
    a = make_pass(a_scene, datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
                  [detection(50, 50, "aircraft", SU24), detection(120, 50, "aircraft"), detection(150, 150, "helicopter")])  # fmt: skip
    b = make_pass(b_scene, datetime(2024, 3, 4, 8, 30, tzinfo=UTC), [detection(50, 50, "aircraft", SU24), detection(100, 150, "ship")])
    with open_store(url) as store:
        return store.save_pass(a), store.save_pass(b)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A private PostGIS database on the test server (dropped afterwards)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from sitewatch.store.store import make_engine

    if not PG_URL:
        missing("SITEWATCH_TEST_PG_URL not set: no PostgreSQL/PostGIS server to test against")
    name = f"sw_api_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    eng.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL: a SQLite file, or the private PostGIS database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    from sqlalchemy import text

    from sitewatch.store.store import make_engine

    url = request.getfixturevalue("pg_database")
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alert_deliveries, alerts, watch_items, watch_sources, claims, documents, detections, passes, "
                          "schema_version CASCADE"))
    eng.dispose()
    return url


class StubDetector:
    """A detector stand-in: fixed boxes (scene pixels) inside the window, progress over ``tiles`` steps;
    ``fail_at`` raises after that many tiles (a scan dying half-way)."""

    name, version = "stub-det", "1.0"
    label = "stub-det 1.0"

    def __init__(self, boxes: list[tuple[float, float, str]], tiles: int = 4, fail_at: int | None = None) -> None:
        self.boxes, self.tiles, self.fail_at = boxes, tiles, fail_at

    def detect(self, scene, *, window=None, gsd_m=None, progress=None) -> list[Detection]:  # noqa: ANN001
        for i in range(1, self.tiles + 1):
            if self.fail_at is not None and i > self.fail_at:
                raise RuntimeError("detector died")
            if progress:
                progress(i, self.tiles)
        return [Detection(OrientedBox.make(cx, cy, 20.0, 14.0, 30.0), cat, 0.9) for cx, cy, cat in self.boxes]
