"""Where new imagery of a watched site comes from: a folder, a STAC API, a static STAC catalog.

A source is polled for :class:`Offer` s: items it holds over a site's AOI that the watcher has not
recorded yet. Sources only list and filter; opening an offer as a scene is :func:`open_offer`
(COG assets over HTTP through GDAL ``/vsicurl/``, only the AOI window is read by the scan).
A source that cannot be listed raises :class:`SourceError`; a bad item is an offer with a
``problem``, so one bad item never stops the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
import shapely
from shapely.geometry import Polygon, mapping, shape

from sitewatch.errors import SceneError, SitewatchError
from sitewatch.imagery import open_item, open_scene
from sitewatch.imagery.base import Scene
from sitewatch.imagery.stac import is_url, item_datetime
from sitewatch.watch.config import FolderSource, ItemLimits, StacApiSource, StacCatalogSource

log = logging.getLogger(__name__)


class SourceError(SitewatchError, OSError):
    """A watched source cannot be listed (unreachable API, unreadable folder or catalog)."""


@dataclasses.dataclass(frozen=True)
class Offer:
    """One item a source holds for a site.

    Attributes:
        item_id: the item's key within its source (STAC id, or the file name in a folder).
        href: where it is (scene file, item JSON or asset URL), for people.
        acquired: acquisition time (UTC) when the source tells it.
        item: the STAC item dict to open, or None.
        path: the scene file or item JSON to open (folder sources), or None.
        problem: why the item cannot be used (malformed), or None.
        skip: why the item is filtered out (cloud, off-nadir limits), or None.
    """

    item_id: str
    href: str | None = None
    acquired: datetime | None = None
    item: dict[str, Any] | None = None
    path: str | None = None
    problem: str | None = None
    skip: str | None = None

    def to_record(self) -> dict[str, Any]:
        """What the store keeps to open the item again (for a retry)."""
        return {"item": self.item, "path": self.path}

    @classmethod
    def from_record(
        cls, item_id: str, href: str | None, acquired: datetime | None, rec: dict[str, Any] | None
    ) -> Offer:
        rec = rec or {}
        return cls(item_id, href, acquired, item=rec.get("item"), path=rec.get("path"))


class WatchSource(ABC):
    """A source of new items for one site."""

    key: str

    @abstractmethod
    def poll(self, aoi: Polygon, since: datetime | None, known: set[str]) -> list[Offer]:
        """Items over ``aoi`` (WGS84) not in ``known``, oldest first; ``since``: latest acquisition seen.

        Raises:
            SourceError: the source cannot be listed.
        """


def make_source(cfg: FolderSource | StacApiSource | StacCatalogSource) -> WatchSource:
    """The source for a configuration entry."""
    if isinstance(cfg, FolderSource):
        return Folder(cfg)
    if isinstance(cfg, StacApiSource):
        return StacApi(cfg)
    return StacCatalog(cfg)


def open_offer(offer: Offer, asset: str | None = None) -> Scene:
    """Open an offer as a scene.

    Raises:
        SceneError: malformed item, no usable asset, unreadable image.
    """
    if offer.problem:
        raise SceneError(f"{offer.item_id}: {offer.problem}")
    if offer.item is not None:
        return open_item(offer.item, asset=asset)
    if offer.path is None:
        raise SceneError(f"{offer.item_id}: nothing to open (no item and no path)")
    return open_scene(offer.path, asset=asset)


def _sorted(offers: list[Offer]) -> list[Offer]:
    return sorted(offers, key=lambda o: (o.acquired is None, o.acquired or datetime.min, o.item_id))


# -- folder -----------------------------------------------------------------------------------


class Folder(WatchSource):
    """Scene files appearing in a folder (``pattern``), each with an optional sidecar ``<stem>.json`` STAC
    item."""

    def __init__(self, cfg: FolderSource) -> None:
        self.cfg = cfg
        self.key = cfg.key
        self.root = cfg.path.expanduser()

    def poll(self, aoi: Polygon, since: datetime | None, known: set[str]) -> list[Offer]:
        if not self.root.is_dir():
            raise SourceError(f"watch folder {self.root} does not exist or is not a folder")
        now = time.time()
        offers = []
        try:
            files = sorted(p for p in self.root.glob(self.cfg.pattern) if p.is_file())
        except OSError as e:
            raise SourceError(f"watch folder {self.root}: cannot list ({e})") from e
        for f in files:
            item_id = f.relative_to(self.root).as_posix()
            if item_id in known:
                continue
            try:
                if now - f.stat().st_mtime < self.cfg.settle_s:
                    continue  # still being written: next poll
            except FileNotFoundError:
                continue
            offers.append(self._offer(f, item_id))
        return _sorted(offers)

    def _offer(self, f: Path, item_id: str) -> Offer:
        side = f.with_suffix(".json")
        if not side.is_file():
            return Offer(item_id, str(f), None, path=str(f))
        try:
            item = pystac.Item.from_file(str(side))
        except Exception as e:  # noqa: BLE001 - JSON, schema and I/O errors all mean a bad sidecar
            return Offer(
                item_id,
                str(side),
                problem=f"malformed sidecar STAC item {side.name} ({type(e).__name__}: {_line(e)})",
            )
        return Offer(item_id, str(side), item_datetime(item), path=str(side))


# -- STAC API ---------------------------------------------------------------------------------


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _offer_from_dict(d: Any, where: str, limits: ItemLimits) -> Offer:
    """An offer for one item dict; a malformed item becomes an offer with a ``problem``."""
    if not isinstance(d, dict):
        return Offer(
            f"malformed-{hashlib.sha1(repr(d).encode()).hexdigest()[:12]}",
            where,
            problem="not a STAC item (not an object)",
        )
    raw_id = d.get("id")
    item_id = (
        str(raw_id)
        if isinstance(raw_id, str) and raw_id
        else f"malformed-{hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]}"
    )
    try:
        item = pystac.Item.from_dict(d, preserve_dict=True)
        acquired = item_datetime(item)
        if not isinstance(raw_id, str) or not raw_id:
            raise ValueError("no id")
        if acquired is None:
            raise ValueError("no datetime")
        shape(d["geometry"])
    except Exception as e:  # noqa: BLE001 - pystac/shapely raise many kinds for one meaning
        return Offer(item_id, where, problem=f"malformed STAC item ({type(e).__name__}: {_line(e)})")
    href = item.get_self_href() or where
    skip = _limits_skip(item.properties, limits)
    return Offer(item_id, href, acquired, item=item.to_dict(), skip=skip)


def _limits_skip(props: dict[str, Any], limits: ItemLimits) -> str | None:
    cloud, off_nadir = props.get("eo:cloud_cover"), props.get("view:off_nadir")
    if limits.max_cloud_pct is not None and cloud is not None and float(cloud) > limits.max_cloud_pct:
        return f"cloud cover {float(cloud):g} % above the limit of {limits.max_cloud_pct:g} %"
    if (
        limits.max_off_nadir_deg is not None
        and off_nadir is not None
        and float(off_nadir) > limits.max_off_nadir_deg
    ):
        return f"off-nadir {float(off_nadir):g}° above the limit of {limits.max_off_nadir_deg:g}°"
    return None


class StacApi(WatchSource):
    """STAC API item search (pystac-client) over the AOI, from ``lookback_days`` before the latest item
    seen."""

    def __init__(self, cfg: StacApiSource) -> None:
        self.cfg = cfg
        self.key = cfg.key

    def poll(self, aoi: Polygon, since: datetime | None, known: set[str]) -> list[Offer]:
        from pystac_client import Client

        start = None if since is None else since - timedelta(days=self.cfg.lookback_days)
        when = None if start is None else f"{start.isoformat().replace('+00:00', 'Z')}/.."
        try:
            client = Client.open(self.cfg.url, timeout=self.cfg.timeout_s)
            search = client.search(intersects=mapping(aoi), datetime=when, collections=self.cfg.collections,
                                   max_items=self.cfg.max_items,
                                   limit=min(self.cfg.max_items, 100))  # fmt: skip
            dicts = list(search.items_as_dicts())
        except Exception as e:  # noqa: BLE001 - pystac-client raises APIError, requests errors, JSON errors
            raise SourceError(
                f"STAC API {self.cfg.url}: search failed ({type(e).__name__}: {_line(e)})"
            ) from e
        offers = [_offer_from_dict(d, self.cfg.url, self.cfg) for d in dicts]
        return _sorted([o for o in offers if o.item_id not in known])


# -- static STAC catalog ----------------------------------------------------------------------


class StacCatalog(WatchSource):
    """A static STAC catalog walked link by link (so one unreadable item does not stop the walk)."""

    def __init__(self, cfg: StacCatalogSource) -> None:
        self.cfg = cfg
        self.key = cfg.key

    def poll(self, aoi: Polygon, since: datetime | None, known: set[str]) -> list[Offer]:
        io = pystac.StacIO.default()
        root = self.cfg.url if is_url(self.cfg.url) else str(Path(self.cfg.url).expanduser().resolve())
        try:
            top = io.read_json(root)
        except Exception as e:  # noqa: BLE001
            raise SourceError(
                f"STAC catalog {self.cfg.url}: cannot read ({type(e).__name__}: {_line(e)})"
            ) from e
        offers: list[Offer] = []
        shapely.prepare(aoi)
        self._walk(io, top, root, aoi, known, offers, seen={root}, depth=0)
        return _sorted(offers)

    def _walk(self, io: pystac.StacIO, obj: Any, href: str, aoi: Polygon, known: set[str], out: list[Offer],
              seen: set[str], depth: int) -> None:  # fmt: skip
        if depth > 16 or not isinstance(obj, dict):
            return
        for link in obj.get("links") or []:
            rel = link.get("rel") if isinstance(link, dict) else None
            if rel not in ("child", "item") or not link.get("href"):
                continue
            target = pystac.utils.make_absolute_href(link["href"], href)
            if target in seen:
                continue
            seen.add(target)
            try:
                child = io.read_json(target)
            except Exception as e:  # noqa: BLE001
                if rel == "item":
                    out.append(
                        Offer(
                            Path(target).stem,
                            target,
                            problem=f"unreadable STAC item ({type(e).__name__}: {_line(e)})",
                        )
                    )
                else:
                    log.warning("STAC catalog %s: child %s unreadable (%s)", self.cfg.url, target, _line(e))
                continue
            if rel == "child":
                self._walk(io, child, target, aoi, known, out, seen, depth + 1)
                continue
            if isinstance(child, dict):
                child = {**child, "links": [ln for ln in child.get("links") or [] if ln.get("rel") != "self"]
                         + [{"rel": "self", "href": target, "type": "application/geo+json"}]}  # fmt: skip
            offer = _offer_from_dict(child, target, self.cfg)
            if offer.item_id in known:
                continue
            if offer.problem is None and not shape(child["geometry"]).intersects(aoi):
                continue  # an item of another place
            out.append(offer)
