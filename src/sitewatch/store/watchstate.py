"""The watcher's state in the store: items seen per site and source, source polls, alerts, deliveries.

A watched source offers items (scene files, STAC items). Each is recorded once per ``(site, source,
item_id)`` with its outcome, so a restarted watcher neither rescans what was done nor skips what
was not: an item is marked ``done`` in the same transaction that inserts its alerts and their
pending deliveries (see :meth:`WatchLedger.record_done`); the pass itself is stored before by
:meth:`~sitewatch.store.Store.save_pass`, which replaces any earlier pass of the same scene, so a
watcher killed between the two rescans the item into the same single pass.

Times are timezone-aware UTC. Tables: :func:`sitewatch.store.schema.watch_items_table` and the
three after it.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from sitewatch.store.store import Store, _json, _utc

log = logging.getLogger(__name__)

#: Item outcomes.
DONE, SKIPPED, RETRY, FAILED = "done", "skipped", "retry", "failed"

#: Delivery outcomes.
PENDING, SENT = "pending", "sent"


@dataclasses.dataclass(frozen=True)
class ItemRecord:
    """One item a source offered and what became of it."""

    site: str
    source: str
    item_id: str
    status: str
    attempts: int = 0
    href: str | None = None
    acquired: datetime | None = None
    item: dict[str, Any] | None = None
    next_attempt: datetime | None = None
    error: str | None = None
    pass_id: int | None = None
    updated: datetime | None = None


@dataclasses.dataclass(frozen=True)
class NewAlert:
    """An alert to store with the item it was raised on: ``kind`` and ``subject`` make it unique per item."""

    kind: str
    subject: str
    title: str
    payload: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class AlertRecord:
    """A stored alert."""

    id: int
    site: str
    source: str
    item_id: str
    pass_id: int | None
    kind: str
    subject: str
    title: str
    payload: dict[str, Any]
    created: datetime


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A pending or finished delivery of one alert on one channel."""

    id: int
    alert: AlertRecord
    channel: str
    status: str
    attempts: int
    next_attempt: datetime | None
    error: str | None


class WatchLedger:
    """Reads and writes the watcher's tables of a :class:`~sitewatch.store.Store`; every write is one
    transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.s = store.schema

    # -- items ------------------------------------------------------------------------------------

    def items(
        self, site: str | None = None, source: str | None = None, status: str | None = None
    ) -> list[ItemRecord]:
        """Recorded items, oldest record first (filtered by site, source and status when given)."""
        t = self.s.watch_items
        q = select(t).order_by(t.c.id)
        for col, value in ((t.c.site, site), (t.c.source, source), (t.c.status, status)):
            if value is not None:
                q = q.where(col == value)
        with self.store._guard("read watch items"), self.store.engine.connect() as conn:
            return [self._item(r) for r in conn.execute(q)]

    def known_ids(self, site: str, source: str) -> set[str]:
        """Ids of every item recorded for ``(site, source)``, whatever its outcome."""
        t = self.s.watch_items
        q = select(t.c.item_id).where(t.c.site == site, t.c.source == source)
        with self.store._guard("read watch items"), self.store.engine.connect() as conn:
            return set(conn.execute(q).scalars())

    def due(self, site: str, source: str, now: datetime) -> list[ItemRecord]:
        """Items of ``(site, source)`` waiting for a retry whose time has come, oldest first."""
        t = self.s.watch_items
        q = (
            select(t)
            .where(t.c.site == site, t.c.source == source, t.c.status == RETRY, t.c.next_attempt <= _utc(now))
            .order_by(t.c.acquired, t.c.id)
        )
        with self.store._guard("read watch items"), self.store.engine.connect() as conn:
            return [self._item(r) for r in conn.execute(q)]

    def latest_acquired(self, site: str, source: str) -> datetime | None:
        """The latest acquisition time among the items recorded for ``(site, source)``."""
        t = self.s.watch_items
        q = select(func.max(t.c.acquired)).where(t.c.site == site, t.c.source == source)
        with self.store._guard("read watch items"), self.store.engine.connect() as conn:
            return _utc(conn.execute(q).scalar_one_or_none())

    def record(self, rec: ItemRecord) -> None:
        """Insert or update the record of one item (a skip or a failure); ``done`` goes through
        :meth:`record_done`."""
        with self.store._guard(f"record watch item {rec.item_id}"), self.store._write() as conn:
            self._upsert_item(conn, rec)

    def record_done(
        self, rec: ItemRecord, alerts: list[NewAlert], channels: dict[str, datetime]
    ) -> list[int]:
        """Mark an item done, store its alerts and one pending delivery per channel, in ONE transaction.

        Args:
            rec: the item, with ``status`` ``done`` and its ``pass_id``.
            alerts: the alerts raised on the item's pass.
            channels: channel name → earliest delivery time (later than now during quiet hours).

        Returns:
            The ids of the alerts stored (an alert already stored for the item is not stored again).
        """
        a = self.s.alerts
        now = datetime.now(UTC)
        ids: list[int] = []
        with self.store._guard(f"record watch item {rec.item_id}"), self.store._write() as conn:
            self._upsert_item(conn, rec)
            for al in alerts:
                exists = conn.execute(
                    select(a.c.id).where(
                        a.c.site == rec.site,
                        a.c.source == rec.source,
                        a.c.item_id == rec.item_id,
                        a.c.kind == al.kind,
                        a.c.subject == al.subject,
                    )
                ).first()
                if exists is not None:
                    continue
                values = {"site": rec.site, "source": rec.source, "item_id": rec.item_id,
                          "pass_id": rec.pass_id, "kind": al.kind, "subject": al.subject, "title": al.title,
                          "payload": _json(al.payload), "created": now}  # fmt: skip
                alert_id = int(conn.execute(a.insert().values(**values).returning(a.c.id)).scalar_one())
                ids.append(alert_id)
                rows = [{"alert_id": alert_id, "channel": ch, "status": PENDING, "attempts": 0,
                         "next_attempt": _utc(when)}
                        for ch, when in channels.items()]  # fmt: skip
                if rows:
                    conn.execute(self.s.alert_deliveries.insert(), rows)
        return ids

    def _upsert_item(self, conn: Any, rec: ItemRecord) -> None:
        t = self.s.watch_items
        now = datetime.now(UTC)
        values = {
            "href": rec.href, "acquired": _utc(rec.acquired),
            "item": None if rec.item is None else _json(rec.item), "status": rec.status,
            "attempts": rec.attempts, "next_attempt": _utc(rec.next_attempt), "error": rec.error,
            "pass_id": rec.pass_id, "updated": now,
        }  # fmt: skip
        key = and_(t.c.site == rec.site, t.c.source == rec.source, t.c.item_id == rec.item_id)
        if conn.execute(update(t).where(key).values(**values)).rowcount == 0:
            conn.execute(
                t.insert().values(
                    site=rec.site, source=rec.source, item_id=rec.item_id, first_seen=now, **values
                )
            )

    def _item(self, r: Any) -> ItemRecord:
        return ItemRecord(
            site=r.site, source=r.source, item_id=r.item_id, status=r.status, attempts=r.attempts,
            href=r.href, acquired=_utc(r.acquired), item=r.item, next_attempt=_utc(r.next_attempt),
            error=r.error, pass_id=r.pass_id, updated=_utc(r.updated),
        )  # fmt: skip

    # -- sources ----------------------------------------------------------------------------------

    def source_polled(self, site: str, source: str, error: str | None) -> None:
        """Record a poll of a source: its time, and the error when it failed (failures counted until one
        succeeds)."""
        t = self.s.watch_sources
        now = datetime.now(UTC)
        key = and_(t.c.site == site, t.c.source == source)
        with self.store._guard(f"record poll of {source}"), self.store._write() as conn:
            row = conn.execute(select(t.c.failures).where(key)).first()
            failures = 0 if error is None else (row.failures if row else 0) + 1
            values: dict[str, Any] = {"last_poll": now, "error": error, "failures": failures}
            if error is None:
                values["last_ok"] = now
            if row is None:
                conn.execute(t.insert().values(site=site, source=source, **values))
            else:
                conn.execute(update(t).where(key).values(**values))

    def sources(self) -> list[dict[str, Any]]:
        """Every polled source: site, source, last_poll, last_ok, error, failures."""
        t = self.s.watch_sources
        with self.store._guard("read watch sources"), self.store.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.site, t.c.source)).mappings().all()
        return [{**r, "last_poll": _utc(r["last_poll"]), "last_ok": _utc(r["last_ok"])} for r in rows]

    # -- alerts and deliveries --------------------------------------------------------------------

    def alerts(self, site: str | None = None, limit: int | None = None) -> list[AlertRecord]:
        """Stored alerts, newest first."""
        a = self.s.alerts
        q = select(a).order_by(a.c.id.desc())
        if site is not None:
            q = q.where(a.c.site == site)
        if limit is not None:
            q = q.limit(limit)
        with self.store._guard("read alerts"), self.store.engine.connect() as conn:
            return [self._alert(r) for r in conn.execute(q)]

    def due_deliveries(self, now: datetime) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest alert first."""
        d, a = self.s.alert_deliveries, self.s.alerts
        q = (
            select(
                d,
                a.c.site,
                a.c.source,
                a.c.item_id,
                a.c.pass_id,
                a.c.kind,
                a.c.subject,
                a.c.title,
                a.c.payload,
                a.c.created,
            )
            .join(a, a.c.id == d.c.alert_id)
            .where(d.c.status == PENDING, or_(d.c.next_attempt.is_(None), d.c.next_attempt <= _utc(now)))
            .order_by(d.c.alert_id, d.c.id)
        )
        with self.store._guard("read alert deliveries"), self.store.engine.connect() as conn:
            return [self._delivery(r) for r in conn.execute(q)]

    def deliveries(self, status: str | None = None) -> list[Delivery]:
        """Deliveries (with a given status, or all), oldest first."""
        d, a = self.s.alert_deliveries, self.s.alerts
        q = (
            select(
                d,
                a.c.site,
                a.c.source,
                a.c.item_id,
                a.c.pass_id,
                a.c.kind,
                a.c.subject,
                a.c.title,
                a.c.payload,
                a.c.created,
            )
            .join(a, a.c.id == d.c.alert_id)
            .order_by(d.c.id)
        )
        if status is not None:
            q = q.where(d.c.status == status)
        with self.store._guard("read alert deliveries"), self.store.engine.connect() as conn:
            return [self._delivery(r) for r in conn.execute(q)]

    def delivery_done(self, delivery_id: int, *, error: str | None = None,
                      next_attempt: datetime | None = None, give_up: bool = False) -> None:  # fmt: skip
        """Record one delivery attempt: sent (no ``error``), to be retried at ``next_attempt``, or given
        up."""
        d = self.s.alert_deliveries
        now = datetime.now(UTC)
        if error is None:
            values: dict[str, Any] = {"status": SENT, "sent": now, "error": None, "next_attempt": None}
        else:
            values = {
                "status": FAILED if give_up else PENDING,
                "error": error,
                "next_attempt": _utc(next_attempt),
            }
        with self.store._guard(f"record delivery {delivery_id}"), self.store._write() as conn:
            conn.execute(update(d).where(d.c.id == delivery_id).values(attempts=d.c.attempts + 1, **values))

    def _alert(self, r: Any, alert_id: int | None = None) -> AlertRecord:
        return AlertRecord(
            id=alert_id if alert_id is not None else r.id, site=r.site, source=r.source, item_id=r.item_id,
            pass_id=r.pass_id, kind=r.kind, subject=r.subject, title=r.title, payload=dict(r.payload or {}),
            created=_utc(r.created),
        )  # fmt: skip

    def _delivery(self, r: Any) -> Delivery:
        return Delivery(id=r.id, alert=self._alert(r, r.alert_id), channel=r.channel, status=r.status,
                        attempts=r.attempts, next_attempt=_utc(r.next_attempt), error=r.error)  # fmt: skip
