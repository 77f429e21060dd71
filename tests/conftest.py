"""Shared fixtures: the real data tree (../shared/data) and synthetic georeferenced rasters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_support import missing

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SITEWATCH_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real labelled imagery tree; tests that need it skip where it is absent (fail in CI)."""
    if not DATA.is_dir():
        missing(f"real data tree not found at {DATA}")
    return DATA


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own SITEWATCH_HOME and config folder so no test reads a user's store or config."""
    home = tmp_path_factory.mktemp("swhome")
    monkeypatch.setenv("SITEWATCH_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    for var in (
        "SITEWATCH_STORE_URL",
        "SITEWATCH_CONFIG",
        "SITEWATCH_MODEL",
        "SITEWATCH_SCORE_THRESHOLD",
        "SITEWATCH_DETECT_THOROUGH",
    ):
        monkeypatch.delenv(var, raising=False)


PG_URL = os.environ.get("SITEWATCH_TEST_PG_URL")


@pytest.fixture
def private_pg_url() -> str:
    """URL of a private, empty database on the PostGIS test server, dropped afterwards.

    Skips without ``SITEWATCH_TEST_PG_URL`` (fails in CI, which always starts one).
    """
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from sitewatch.store.store import make_engine

    if not PG_URL:
        missing("SITEWATCH_TEST_PG_URL not set: no PostgreSQL/PostGIS server to test against")
    name = f"sw_t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL of each backend: a SQLite file, then a private PostGIS database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("private_pg_url")
