"""Which passes of a site a command works on: ``--from`` / ``--to``, one meaning everywhere.

Both bounds are inclusive and each is either a stored pass id (``7``) or a UTC date or time
(``2024-12-10``, ``2024-12-10T06:30``). A date as ``--to`` covers its whole day. The span is the
passes from the first bound to the second, oldest first; ``compare`` compares the first and the
last of them, ``report``, ``timeline``, ``inventory``, ``assess``, ``export`` and ``passes`` use
them all.

Example:
    >>> span = PassSpan.parse("2024-12-10", None)
    >>> span.describe()
    'from 2024-12-10'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sitewatch.errors import SpanError
from sitewatch.types import Pass


@dataclass(frozen=True)
class Bound:
    """One end of a span: a pass id, or an instant (UTC)."""

    text: str
    pass_id: int | None = None
    at: datetime | None = None

    @classmethod
    def parse(cls, text: str, which: str) -> Bound:
        """``"7"`` → pass 7; ``"2024-12-10"`` → that day (start of it for ``from``, end for ``to``).

        Raises:
            SpanError: neither a pass id nor an ISO date/time.
        """
        t = text.strip()
        if t.isdigit():
            return cls(t, pass_id=int(t))
        try:
            when = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise SpanError(f"--{which} {text!r}: expected a pass id or a date YYYY-MM-DD[THH:MM]") from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        if which == "to" and len(t) == 10:  # a bare date as the end covers its whole day
            when = datetime.combine(when.date(), time.max, tzinfo=UTC)
        return cls(t, at=when)


@dataclass(frozen=True)
class PassSpan:
    """The inclusive span ``start``..``end`` (either open); see the module docstring."""

    start: Bound | None = None
    end: Bound | None = None

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> PassSpan:
        """Parse the ``--from`` and ``--to`` texts (None: open on that side)."""
        return cls(
            None if start is None else Bound.parse(start, "from"),
            None if end is None else Bound.parse(end, "to"),
        )

    @property
    def is_open(self) -> bool:
        """True when neither bound is given (every pass)."""
        return self.start is None and self.end is None

    def describe(self) -> str:
        """The span as asked, e.g. ``"from 2024-12-10 to pass 9"`` ("" when open)."""

        def name(b: Bound) -> str:
            return f"pass {b.pass_id}" if b.pass_id is not None else b.text

        parts = ([f"from {name(self.start)}"] if self.start else []) + (
            [f"to {name(self.end)}"] if self.end else []
        )
        return " ".join(parts)

    def select(self, passes: Sequence[Pass], site: str) -> list[Pass]:
        """The passes in the span, in the order given (oldest first).

        A date bound leaves out passes whose acquisition time is unknown (they cannot be placed).

        Raises:
            SpanError: a pass id that is not a pass of ``site``, a start after the end, or an empty span.
        """
        if self.is_open:
            return list(passes)
        lo = 0 if self.start is None else self._index(passes, self.start, site, "from")
        hi = len(passes) - 1 if self.end is None else self._index(passes, self.end, site, "to")
        if (
            lo > hi
            and self.start is not None
            and self.end is not None
            and self.start.pass_id is not None
            and self.end.pass_id is not None
        ):
            a, b = passes[lo], passes[hi]
            raise SpanError(
                f"--from pass {a.id} ({_when(a)}) is later than --to pass {b.id} ({_when(b)}): spans run "
                "forwards in time; swap them"
            )
        chosen = [p for i, p in enumerate(passes) if lo <= i <= hi and self._dated_ok(p)]
        if not chosen:
            first, last = (passes[0], passes[-1]) if passes else (None, None)
            have = (
                f"its passes run from {_when(first)} to {_when(last)}"
                if first and last
                else "it has no stored passes"
            )
            raise SpanError(f"no pass of site {site!r} {self.describe()} ({have})")
        return chosen

    def _dated_ok(self, p: Pass) -> bool:
        dated = any(b is not None and b.at is not None for b in (self.start, self.end))
        return p.acquired is not None or not dated

    @staticmethod
    def _index(passes: Sequence[Pass], bound: Bound, site: str, which: str) -> int:
        """Index of the first pass in the span (``from``) or of the last one (``to``)."""
        if bound.pass_id is not None:
            for i, p in enumerate(passes):
                if p.id == bound.pass_id:
                    return i
            ids = ", ".join(str(p.id) for p in passes) or "none"
            raise SpanError(
                f"--{which} {bound.pass_id}: no pass {bound.pass_id} of site {site!r}; its passes: {ids}"
            )
        assert bound.at is not None
        at = bound.at
        if which == "from":
            return next(
                (i for i, p in enumerate(passes) if p.acquired is not None and _utc(p.acquired) >= at),
                len(passes),
            )
        return max(
            (i for i, p in enumerate(passes) if p.acquired is not None and _utc(p.acquired) <= at), default=-1
        )


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _when(p: Pass | None) -> str:
    if p is None or p.acquired is None:
        return "date unknown"
    t = _utc(p.acquired)
    return (
        t.date().isoformat()
        if t.time() == time(0)
        else (t - timedelta(microseconds=t.microsecond)).strftime("%Y-%m-%dT%H:%M")
    )
