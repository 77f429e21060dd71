"""The report of the SIMULATED demo site, built from its store, against a stored expected JSON twin.

The demo's imagery, scan (a detector that finds exactly the simulated objects) and claims steps fill
a store; :func:`sitewatch.report.build_report_data` then compares, assesses and assembles the report
as the demo, the CLI and the API do. Volatile fields (generation time, version, the temporary
folder) are replaced and floats rounded before the comparison.

To regenerate after an intended change of the report: ``SITEWATCH_UPDATE_GOLDEN=1 pytest
tests/test_report_golden.py``, then review the diff of the expected file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sitewatch.demo.steps import run_demo, step_claims, step_imagery, step_scan
from sitewatch.report import build_report_data
from sitewatch.sites import get_site
from sitewatch.store import open_store
from test_demo import _truth_detector

EXPECTED = Path(__file__).parent / "data" / "report_golden_hmeimim_simulated.json"


def _normalised(value: Any, tmp: str) -> Any:
    """``value`` with the temporary folder named ``<tmp>`` and floats rounded to 6 decimals."""
    if isinstance(value, dict):
        return {k: _normalised(v, tmp) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v, tmp) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>")
    return value


def test_simulated_demo_report_json_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _truth_detector(monkeypatch)
    result = run_demo(tmp_path / "out", steps=[step_imagery, step_scan, step_claims])
    with open_store(result.store_url) as store:
        data = build_report_data(store, get_site(result.site))
    twin = data.to_json_dict()
    assert twin.pop("generated") and twin.pop("sitewatch_version")
    got = _normalised(twin, str(tmp_path))
    if os.environ.get("SITEWATCH_UPDATE_GOLDEN"):
        EXPECTED.write_text(json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    assert got["simulated"] is True and got["site"]["name"] == "hmeimim"
    for key in sorted(expected.keys() | got.keys()):  # one section at a time: a failure names the section
        assert got.get(key) == expected.get(key), key
