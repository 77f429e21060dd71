"""The watch cycle: poll each site's sources, scan new items, assess, raise and deliver alerts.

One cycle (:meth:`Watcher.run_once`):

1. for each watched site and source: the items due for a retry, then the new items the source
   offers (after the latest acquisition seen, see :mod:`sitewatch.watch.sources`);
2. per item: open it, scan it (:func:`sitewatch.pipeline.scan`, only the AOI window is read) into
   a stored pass, compare it with the previous pass, assess the site with and without it, and
   raise the alerts the site's rules ask for (:mod:`sitewatch.watch.alerts`); the item is marked
   done together with its alerts in one transaction;
3. deliver the pending alerts on their channels, retrying failures with back-off.

A failing item is logged in one line naming it and the problem, recorded with its error (retried
with back-off unless the problem is permanent: malformed, no usable asset, not covering the AOI),
and leaves no pass behind; the cycle goes on with the next item. A watcher killed at any point
rescans at most the item it was working on, into the same single pass, and raises its alerts once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sitewatch.errors import CoverageError, GeoreferenceError, SceneError, SitewatchError, SitewatchWarning
from sitewatch.store import Store
from sitewatch.store.watchstate import DONE, FAILED, RETRY, SKIPPED, ItemRecord, WatchLedger
from sitewatch.types import Pass
from sitewatch.watch._chips import change_chips
from sitewatch.watch.alerts import alerts_for, evidence
from sitewatch.watch.channels import AlertChannel, DeliveryError, make_channels
from sitewatch.watch.config import SiteWatch, WatchConfig
from sitewatch.watch.sources import Offer, SourceError, WatchSource, make_source, open_offer

log = logging.getLogger(__name__)

#: Words in a scene error that no retry will cure.
_PERMANENT = ("malformed", "no image asset", "no asset", "not a STAC", "not an image", "no CRS and no GSD")


@dataclasses.dataclass
class CycleResult:
    """What one cycle did."""

    passes: list[int] = dataclasses.field(default_factory=list)
    alerts: list[int] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    source_errors: list[str] = dataclasses.field(default_factory=list)
    delivered: int = 0
    delivery_failures: list[str] = dataclasses.field(default_factory=list)
    stopped: bool = False


@dataclasses.dataclass
class _Watched:
    site: Any
    cfg: SiteWatch
    sources: list[tuple[WatchSource, Any]]


class Watcher:
    """Watches the configured sites on one store.

    Args:
        config: the watch configuration.
        store: an open store (passes and the watch state go there).
        detector: the detector (default: ``config.model`` or the bundled model, loaded at the first scan).
        stop: set it to stop after the current item (daemon shutdown).
        clock: the current time, UTC (tests move it).
    """

    def __init__(self, config: WatchConfig, store: Store, *, detector: Any = None,
                 stop: threading.Event | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        from sitewatch.sites import get_site

        self.config = config
        self.store = store
        self.ledger = WatchLedger(store)
        self._detector = detector
        self.stop = stop or threading.Event()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.watched = [
            _Watched(get_site(sw.site), sw, [(make_source(s), s) for s in sw.sources]) for sw in config.sites
        ]
        self.channels: dict[str, AlertChannel] = make_channels(
            list(config.channels), lambda n: self.ledger.alerts(limit=n)
        )
        self._comparisons: dict[str, _Comparisons] = {}

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from sitewatch.pipeline import load_default_detector

            self._detector = load_default_detector(self.config.model)
        return self._detector

    # -- the cycle --------------------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """Poll every source of every site once, handle what is new or due, deliver pending alerts."""
        res = CycleResult()
        for w in self.watched:
            for source, cfg in w.sources:
                if self.stop.is_set():
                    res.stopped = True
                    break
                self._poll(w, source, cfg, res)
        self.deliver(res)
        res.stopped = res.stopped or self.stop.is_set()
        return res

    def _poll(self, w: _Watched, source: WatchSource, cfg: Any, res: CycleResult) -> None:
        name = w.site.name
        now = self.clock()
        offers: list[tuple[Offer, int]] = [
            (Offer.from_record(r.item_id, r.href, r.acquired, r.item), r.attempts)
            for r in self.ledger.due(name, source.key, now)
        ]
        try:
            new = source.poll(
                w.site.aoi,
                self.ledger.latest_acquired(name, source.key),
                self.ledger.known_ids(name, source.key),
            )
        except SourceError as e:
            log.error("site %s: %s", name, e)
            res.source_errors.append(str(e))
            self.ledger.source_polled(name, source.key, str(e))
        else:
            self.ledger.source_polled(name, source.key, None)
            offers += [(o, 0) for o in new]
        if offers:
            log.info("site %s, %s: %d item(s) to handle", name, source.key, len(offers))
        for offer, attempts in offers:
            if self.stop.is_set():
                res.stopped = True
                return
            self._handle(w, source, getattr(cfg, "asset", None), offer, attempts, res)

    def _handle(
        self,
        w: _Watched,
        source: WatchSource,
        asset: str | None,
        offer: Offer,
        attempts: int,
        res: CycleResult,
    ) -> None:
        name = w.site.name
        rec = ItemRecord(
            name, source.key, offer.item_id, SKIPPED, attempts, offer.href, offer.acquired, offer.to_record()
        )
        if offer.skip:
            log.info("site %s: item %s skipped: %s", name, offer.item_id, offer.skip)
            self.ledger.record(dataclasses.replace(rec, error=offer.skip))
            res.skipped.append(offer.item_id)
            return
        p: Pass | None = None
        try:
            p = self._scan(w, offer, asset)
            new_alerts = self._alerts(w, p)
            ids = self.ledger.record_done(dataclasses.replace(rec, status=DONE,
                                                              acquired=p.acquired or offer.acquired,
                                                              pass_id=p.id, error=None, next_attempt=None),
                                          new_alerts, self._channels_for(w))  # fmt: skip
        except Exception as e:  # noqa: BLE001 - one item never stops the watcher; non-sitewatch errors keep their traceback in the debug log
            if not isinstance(e, SitewatchError | OSError):
                log.debug("item %s: unexpected error", offer.item_id, exc_info=True)
                e = SitewatchError(f"internal error ({type(e).__name__}: {e})")
            if p is not None and p.id is not None:
                self._drop_pass(p.id)
            self._failed(rec, e, res)
            return
        if p.id is not None:  # scanned into the store, so always
            res.passes.append(p.id)
        res.alerts += ids
        log.info("site %s: item %s → pass %s, %d alert(s)", name, offer.item_id, p.id, len(ids))

    def _scan(self, w: _Watched, offer: Offer, asset: str | None) -> Pass:
        from sitewatch.pipeline import scan

        with open_offer(offer, asset) as scene, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            p = scan(scene, w.site, self.detector, self.store, min_coverage=w.cfg.min_coverage)
        for c in caught:
            if issubclass(c.category, SitewatchWarning):
                log.warning("site %s: item %s: %s", w.site.name, offer.item_id, c.message)
        return p

    def _alerts(self, w: _Watched, new: Pass) -> list[Any]:
        from sitewatch.assess import assess_site

        passes = self.store.list_passes(w.site.name)
        before = [p for p in passes if p.id != new.id]
        after = passes
        comparisons = self._comparisons.setdefault(w.site.name, _Comparisons(w.site, self.config.read_pixels))
        claims = self.store.list_claims(w.site.name)
        a_before = assess_site(w.site, before, comparisons.chain(before), claims)
        a_after = assess_site(w.site, after, comparisons.chain(after), claims)
        idx = [p.id for p in after].index(new.id)
        previous = after[idx - 1] if idx > 0 else None
        comparison = comparisons.get(previous, new) if previous is not None else None
        ev = evidence(new, previous, comparison, None)
        found = alerts_for(a_before, a_after, w.cfg.rules, ev)
        reports = self.config.reports
        if found and reports is not None:
            ev["report"] = self._report(w, new, reports)
            if comparison is not None and previous is not None and self.config.chips:
                folder = reports.expanduser() / w.site.name / "chips"
                ev["chips"] = change_chips(comparison, previous, new, folder, self.config.chips)
        return found

    def _report(self, w: _Watched, p: Pass, reports: Path) -> str | None:
        from sitewatch.report import write_report

        out = reports.expanduser() / w.site.name / f"{w.site.name}-pass{p.id}.html"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            return str(write_report(self.store, w.site, out, overwrite=True))  # the watcher's own folder
        except (SitewatchError, OSError) as e:
            log.warning("site %s: no report for pass %s (%s)", w.site.name, p.id, e)
            return None

    def _channels_for(self, w: _Watched) -> dict[str, datetime]:
        now = self.clock()
        quiet = w.cfg.rules.quiet_hours
        hold = quiet.end_of(now) if quiet is not None else None
        names = w.cfg.rules.channels if w.cfg.rules.channels is not None else list(self.channels)
        return {n: (hold if hold is not None and self.channels[n].push else now) for n in names}

    def _drop_pass(self, pass_id: int) -> None:
        try:
            self.store.delete_pass(pass_id)
        except SitewatchError as e:  # the item stays not-done: the retry rescans and replaces the pass
            log.error("pass %s of a failed item could not be removed: %s", pass_id, e)

    def _failed(self, rec: ItemRecord, e: BaseException, res: CycleResult) -> None:
        attempts = rec.attempts + 1
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        permanent = isinstance(e, CoverageError | GeoreferenceError) or (
            isinstance(e, SceneError) and any(w in msg for w in _PERMANENT)
        )
        if permanent or attempts >= self.config.retry.attempts:
            status, next_attempt, note = (
                FAILED,
                None,
                "not retried" if permanent else f"gave up after {attempts} attempts",
            )
        else:
            delay = self.config.retry.delay_s(attempts)
            status, next_attempt, note = (
                RETRY,
                self.clock() + timedelta(seconds=delay),
                f"retry {attempts + 1} in {delay:g} s",
            )
        log.error("site %s: item %s failed: %s (%s)", rec.site, rec.item_id, msg, note)
        res.failed.append(rec.item_id)
        try:
            self.ledger.record(
                dataclasses.replace(
                    rec, status=status, attempts=attempts, next_attempt=next_attempt, error=msg
                )
            )
        except SitewatchError as e2:
            log.error("site %s: the failure of item %s could not be recorded: %s", rec.site, rec.item_id, e2)

    # -- delivery ---------------------------------------------------------------------------------

    def deliver(self, res: CycleResult | None = None) -> CycleResult:
        """Send every pending delivery whose time has come; failures wait with back-off."""
        res = res or CycleResult()
        for d in self.ledger.due_deliveries(self.clock()):
            if self.stop.is_set():
                res.stopped = True
                break
            ch = self.channels.get(d.channel)
            try:
                if ch is None:
                    raise DeliveryError(f"channel {d.channel!r} is no longer configured")
                ch.send(d.alert)
            except DeliveryError as e:
                attempts = d.attempts + 1
                give_up = ch is None or attempts >= self.config.retry.attempts
                when = (
                    None if give_up else self.clock() + timedelta(seconds=self.config.retry.delay_s(attempts))
                )
                log.error("alert %s on channel %s not delivered: %s (%s)", d.alert.id, d.channel, e,
                          "given up" if give_up else f"retry at {when:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip
                self.ledger.delivery_done(d.id, error=str(e), next_attempt=when, give_up=give_up)
                res.delivery_failures.append(f"{d.channel}: {e}")
                continue
            self.ledger.delivery_done(d.id)
            res.delivered += 1
        return res

    def run_forever(self, every_s: float, on_cycle: Callable[[CycleResult], None] | None = None) -> None:
        """Run a cycle every ``every_s`` seconds until :attr:`stop` is set (returns after the current item).

        A cycle that fails as a whole (the store unreachable) is logged in one line; the next runs on time.
        """
        while not self.stop.is_set():
            try:
                res = self.run_once()
            except SitewatchError as e:
                log.error("watch cycle failed: %s", e)
            else:
                if on_cycle is not None:
                    on_cycle(res)
            self.stop.wait(every_s)


class _Comparisons:
    """Comparisons of consecutive passes of one site, each computed once while the watcher runs.

    Pass ids are never reused (a rescanned scene gets a new id), so ``(a.id, b.id)`` names one
    comparison for good. The change maps are dropped (the assessment does not read them) and at
    most :attr:`KEEP` comparisons are kept, least recently used first out, so memory stays flat.
    """

    KEEP = 256

    def __init__(self, site: Any, read_pixels: bool) -> None:
        self.site = site
        self.read_pixels = read_pixels
        self._done: OrderedDict[tuple[int | None, int | None], Any] = OrderedDict()

    def get(self, a: Pass, b: Pass) -> Any:
        from sitewatch.compare import compare_passes

        key = (a.id, b.id)
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]
        try:
            found = compare_passes(a, b, self.site, read_pixels=self.read_pixels)
            found.change = None
        except SitewatchError as e:
            log.warning("passes %s and %s not compared: %s", a.id, b.id, e)
            found = None
        self._done[key] = found
        if len(self._done) > self.KEEP:
            self._done.popitem(last=False)
        return found

    def chain(self, passes: list[Pass]) -> list[Any]:
        found = (self.get(a, b) for a, b in zip(passes, passes[1:], strict=False))
        return [c for c in found if c is not None]


@contextlib.contextmanager
def single_watcher(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock so that two watchers never work on the same store at once.

    Raises:
        SitewatchError: another watcher holds the lock.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise SitewatchError(
                f"another 'sitewatch watch' is running (lock {lock_path}); stop it first"
            ) from e
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def status(store: Store) -> dict[str, Any]:
    """The watch state for people: sources and their last poll, items per outcome, failures, deliveries."""
    ledger = WatchLedger(store)
    items = ledger.items()
    per: dict[tuple[str, str], dict[str, int]] = {}
    for r in items:
        per.setdefault((r.site, r.source), {}).setdefault(r.status, 0)
        per[(r.site, r.source)][r.status] += 1
    deliveries = ledger.deliveries()
    return {
        "sources": [
            {
                **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in s.items()},
                "items": per.get((s["site"], s["source"]), {}),
            }
            for s in ledger.sources()
        ],
        "failures": [
            {
                "site": r.site,
                "source": r.source,
                "item": r.item_id,
                "status": r.status,
                "attempts": r.attempts,
                "error": r.error,
                "next_attempt": r.next_attempt.isoformat() if r.next_attempt else None,
                "updated": r.updated.isoformat() if r.updated else None,
            }
            for r in items
            if r.status in (RETRY, FAILED)
        ],  # fmt: skip
        "alerts": len(ledger.alerts()),
        "deliveries": {s: sum(1 for d in deliveries if d.status == s) for s in ("pending", "sent", "failed")},
        "delivery_failures": [
            {
                "alert": d.alert.id,
                "channel": d.channel,
                "status": d.status,
                "attempts": d.attempts,
                "error": d.error,
                "next_attempt": d.next_attempt.isoformat() if d.next_attempt else None,
            }
            for d in deliveries
            if d.error and d.status != "sent"
        ],  # fmt: skip
    }
