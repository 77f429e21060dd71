"""Property-based run of the web API against its own OpenAPI document (schemathesis strategies,
hypothesis): no generated request, valid or not, gets a 5xx answer, and every error answer has the
JSON error shape. Each operation gets ``examples`` generated requests, with the write token
(a few in the default run, more with ``-m slow``)."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from api_support import fill_store  # noqa: E402
from sitewatch.api import ApiSettings, create_app  # noqa: E402

TOKEN = "fuzz-token"


@pytest.mark.parametrize("examples", [4, pytest.param(25, marks=pytest.mark.slow)])
def test_no_server_error_on_generated_requests(tmp_path: Path, examples: int) -> None:
    (tmp_path / "imagery").mkdir()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    fill_store(url, tmp_path)
    app = create_app(url, ApiSettings(home=tmp_path / "home", token=TOKEN, imagery_roots=[tmp_path / "imagery"], max_upload_mb=1))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls = {"n": 0}
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case) -> None:  # noqa: ANN001 - a schemathesis Case
            response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
            calls["n"] += 1
            what = f"{case.method} {case.formatted_path} {case.query}"
            if response.status_code >= 500:
                failures.append(f"{what}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                body = response.json()
                if set(body) != {"error", "detail", "field"} or not body["detail"]:
                    failures.append(f"{what}: error body {body}")

        check()
    assert calls["n"] >= examples * 10
    assert not failures, "\n".join(failures[:10])
