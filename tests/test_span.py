"""``--from`` / ``--to``: one meaning (an inclusive span of passes by id or UTC date) in every command."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sitewatch.errors import SpanError
from sitewatch.store.span import PassSpan
from sitewatch.types import Pass


def _passes() -> list[Pass]:
    days = [datetime(2024, 12, 1, 9, tzinfo=UTC), datetime(2024, 12, 10, 23, 59, tzinfo=UTC), datetime(2024, 12, 11, tzinfo=UTC), None]
    return [Pass(id=i + 1, site="b", scene_path=f"{i}.tif", acquired=t, footprint_wkt=None, aoi_coverage=1.0, gsd_m=0.5, model="m", detections=[]) for i, t in enumerate(days)]


@pytest.mark.parametrize(
    ("start", "end", "ids"),
    [
        (None, None, [1, 2, 3, 4]),  # open: every pass, undated ones too
        ("2024-12-10", None, [2, 3]),  # a date bound leaves out the pass of unknown date
        (None, "2024-12-10", [1, 2]),  # a bare date as the end covers its whole day (23:59 is in)
        ("2024-12-10", "2024-12-10", [2]),
        (None, "2024-12-10T12:00", [1]),
        ("2024-12-10T23:59:00Z", None, [2, 3]),
        ("2", "3", [2, 3]),
        ("2", None, [2, 3, 4]),  # id bounds keep the undated pass
        ("1", "2024-12-10", [1, 2]),  # mixed
    ],
)
def test_span_selects_inclusive_passes(start: str | None, end: str | None, ids: list[int]) -> None:
    assert [p.id for p in PassSpan.parse(start, end).select(_passes(), "b")] == ids


def test_span_errors_name_the_bound_and_what_exists() -> None:
    with pytest.raises(SpanError, match=r"^--to 9: no pass 9 of site 'b'; its passes: 1, 2, 3, 4$"):
        PassSpan.parse(None, "9").select(_passes(), "b")
    with pytest.raises(SpanError, match=r"^--from pass 3 \(2024-12-11\) is later than --to pass 1 \(2024-12-01T09:00\)"):
        PassSpan.parse("3", "1").select(_passes(), "b")
    with pytest.raises(SpanError, match=r"^no pass of site 'b' from 2025-01-01 \(its passes run from 2024-12-01T09:00 to date unknown\)$"):
        PassSpan.parse("2025-01-01", None).select(_passes(), "b")
    with pytest.raises(SpanError, match=r"^--from 'yesterday': expected a pass id or a date"):
        PassSpan.parse("yesterday", None)


def test_span_describe() -> None:
    assert PassSpan.parse("2024-12-10", "7").describe() == "from 2024-12-10 to pass 7"
    assert PassSpan().describe() == "" and PassSpan().is_open
