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
    """Every test gets its own SITEWATCH_HOME so no test touches a user's store."""
    home = tmp_path_factory.mktemp("swhome")
    monkeypatch.setenv("SITEWATCH_HOME", str(home))
    monkeypatch.delenv("SITEWATCH_STORE_URL", raising=False)
