"""Parsing of query values the API shares (bbox, times), each failure naming its field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from shapely.geometry import Polygon, box

from sitewatch.api.errors import BadParameterError

#: Largest row id the stores hold (a 32-bit signed integer column on PostgreSQL).
MAX_ID = 2**31 - 1
#: A pass or detection id in a path.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]


def parse_bbox(text: str | None, field: str = "bbox") -> Polygon | None:
    """``W,S,E,N`` in WGS84 degrees as a polygon, or None.

    Raises:
        BadParameterError: not four numbers, out of range, or W ≥ E / S ≥ N.
    """
    if text is None or text == "":
        return None
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise BadParameterError(
            field, f"{text!r}: expected W,S,E,N in degrees, e.g. 35.94,35.39,35.96,35.42"
        ) from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise BadParameterError(field, f"{text!r}: expected -180 ≤ W < E ≤ 180 and -90 ≤ S < N ≤ 90")
    return box(w, s, e, n)


def parse_time(text: str | None, field: str) -> datetime | None:
    """An ISO 8601 date or date-time (naive = UTC) as an aware UTC datetime, or None.

    Raises:
        BadParameterError: not ISO 8601.
    """
    if text is None or text == "":
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameterError(
            field, f"{text!r}: expected an ISO 8601 date or time, e.g. 2024-03-01 or 2024-03-01T10:00Z"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
