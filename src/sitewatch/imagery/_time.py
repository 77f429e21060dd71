"""Acquisition times: explicit arguments, STAC ``datetime`` and TIFF tags, all to timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sitewatch.errors import SceneError


def parse_acquired(value: datetime | date | str | None, *, source: str) -> datetime | None:
    """Parse an acquisition time given by a user or a metadata field.

    Accepts ISO 8601 (``2024-03-01``, ``2024-03-01T10:15:00Z``, ``2024-03-01 10:15:00+02:00``) and the
    TIFF tag form ``2024:03:01 10:15:00``. Naive times are taken as UTC.

    Args:
        value: the time, or None.
        source: the file the time belongs to (named in errors).

    Returns:
        A timezone-aware UTC datetime, or None when ``value`` is None or empty.

    Raises:
        SceneError: ``value`` is not a recognisable date/time, or lies before 1960 or more than a day ahead.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if not text:
            return None
        dt = _parse_text(text, source)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    check_date_range(dt, f"{source}: acquisition time")
    return dt


#: Earliest accepted acquisition or publication date (the first reconnaissance satellites flew in 1960).
EARLIEST = datetime(1960, 1, 1, tzinfo=UTC)


def check_date_range(dt: datetime, what: str) -> None:
    """Refuse a time before 1960 or more than one day in the future.

    Raises:
        SceneError: naming ``what`` and the accepted range.
    """
    latest = datetime.now(UTC) + timedelta(days=1)
    if not EARLIEST <= dt <= latest:
        raise SceneError(
            f"{what} {dt.date().isoformat()} is out of range: expected 1960-01-01 to "
            f"{latest.date().isoformat()}"
        )


def _parse_text(text: str, source: str) -> datetime:
    candidates = [text]
    # TIFFTAG_DATETIME is "YYYY:MM:DD HH:MM:SS".
    if len(text) >= 10 and text[4] == ":" and text[7] == ":":
        candidates.append(text[:4] + "-" + text[5:7] + "-" + text[8:])
    for t in candidates:
        try:
            return datetime.fromisoformat(t)
        except ValueError:
            continue
    raise SceneError(
        f"{source}: bad acquisition time {text!r}; expected ISO 8601 such as 2024-03-01 or "
        "2024-03-01T10:15:00Z"
    )
