"""What every request handler shares: settings, the store (opened on first use), site lookup, caches."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shapely.geometry import Polygon, box

from sitewatch.api.cache import PassResponseCache
from sitewatch.api.settings import ApiSettings
from sitewatch.errors import SiteError
from sitewatch.store import Store, open_store
from sitewatch.types import Pass

log = logging.getLogger(__name__)


@dataclasses.dataclass
class StoredSite:
    """A site that has passes in the store but is not on the watchlist (e.g. the real-pair demo's).

    Same fields as :class:`sitewatch.sites.Site` that comparison, assessment and the report read;
    the empty AOI is never used to cut a scene (such passes are in image pixels).
    """

    name: str
    title: str
    aoi: Polygon = dataclasses.field(default_factory=lambda: box(0, 0, 0, 0))
    aliases: list[str] = dataclasses.field(default_factory=list)
    priors: dict[str, Any] = dataclasses.field(default_factory=dict)
    zones: dict[str, Polygon] = dataclasses.field(default_factory=dict)
    kind: str = "unknown"
    country: str = ""
    notes: str = "Not on the watchlist: known only from its stored passes."
    sources: list[str] = dataclasses.field(default_factory=list)


class LruCache:
    """A small thread-safe least-recently-used cache of computed results (comparisons, reports)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, key: Any) -> Any:
        """The cached value of ``key``, or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        self.put(key, value)
        return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class ServerContext:
    """Settings, the store and the caches of one running API.

    Args:
        store_url: SQLAlchemy URL of the store (None: the default embedded store).
        settings: API settings.
        detector_factory: makes the detector scan jobs use (default: the configured ONNX model).
    """

    def __init__(
        self, store_url: str | None, settings: ApiSettings, detector_factory: Callable[[], Any] | None = None
    ) -> None:
        self.store_url = store_url
        self.settings = settings
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._detector_factory = detector_factory
        self._detector: Any = None
        self.comparisons = LruCache(32)
        self.reports = LruCache(4)
        #: Report warm-up at start: "off", "building" (a child process builds them) or "done".
        self.warm_up = "off"
        #: encoded per-pass responses (detections pages, pass summaries, previews) with their ETags
        self.pass_responses = PassResponseCache(int(settings.response_cache_mb * 1024 * 1024))
        #: (pass id, stored time) → value range a tile stretches to 0..255
        self.pixel_ranges: dict[tuple[int | None, datetime | None], tuple[float, float]] = {}

    @property
    def store(self) -> Store:
        """The open store; opened (and upgraded) on first use, retried while it is unreachable.

        Raises:
            StoreError: the store cannot be opened.
        """
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.store_url)
                    log.info("serving store %s", self._store.url)
        return self._store

    def opened_store(self) -> Store | None:
        """The store if it is open already, else None (opening it may wait on the network: not on the
        event loop)."""
        return self._store

    def detector(self) -> Any:
        """The detector of scan jobs, loaded once."""
        with self._lock:
            if self._detector is None:
                if self._detector_factory is not None:
                    self._detector = self._detector_factory()
                else:
                    from sitewatch.pipeline import load_default_detector

                    self._detector = load_default_detector(self.settings.model)
            return self._detector

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- sites and passes -------------------------------------------------------------------------

    def site(self, name: str) -> Any:
        """The watchlist site of ``name`` (name, title or alias), else a :class:`StoredSite` when the
        store holds passes or claims under that exact name.

        Raises:
            SiteError: neither on the watchlist nor in the store.
        """
        from sitewatch.sites import get_site

        try:
            return get_site(name, home=self.settings.home)
        except SiteError:
            if name in self.store.sites():
                return StoredSite(name=name, title=name)
            raise

    def passes(self, site: Any) -> list[Pass]:
        """The stored passes of a site, oldest first."""
        return self.store.list_passes(site.name)

    def pass_of_site(self, site: Any, pass_id: int) -> Pass:
        """A pass by id, checked to belong to ``site``.

        Raises:
            UnknownPassError: no such pass, or it belongs to another site.
        """
        from sitewatch.errors import UnknownPassError

        p = self.store.get_pass(pass_id)
        if p.site != site.name:
            raise UnknownPassError(f"pass {pass_id} belongs to site '{p.site}', not '{site.name}'")
        return p

    def state_key(self, site: Any) -> tuple[Any, ...]:
        """What changes when a site's stored data changes: its passes (id, time stored) and claims."""
        passes = self.passes(site)
        claims = self.store.list_claims(site.name)
        return (site.name, tuple((p.id, p.created) for p in passes), tuple(c["id"] for c in claims))
