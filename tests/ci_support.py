"""What a missing test requirement does: a skip with its reason on a workstation, a failure in CI.

CI (``CI=true``, set by ``.ci/run`` and by hosted runners) installs the real data tree, PostgreSQL
with PostGIS and the system tools, so a test that finds one missing there must fail rather than
pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

#: True when the tests run in CI.
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Skip the test for ``reason``, or fail it in CI (where nothing may be missing)."""
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, package: str) -> str:
    """Path of the executable ``name``; missing it skips (fails in CI) naming the Debian ``package``."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not installed (apt-get install {package})")
    return path
