"""STAC Items: pick the visual asset, read acquisition and viewing metadata; search STAC APIs.

Items are read with pystac from a local JSON file or a URL; assets are opened by
:func:`sitewatch.imagery.open_scene` through rasterio (remote hrefs via GDAL ``/vsicurl/``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac

from sitewatch.errors import SceneError

log = logging.getLogger(__name__)

_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_TIFF_TYPES = {
    _COG,
    "image/tiff; application=geotiff",
    "image/tiff",
    "image/vnd.stac.geotiff; cloud-optimized=true",
}
_IMAGE_TYPES = _TIFF_TYPES | {"image/jpeg", "image/png", "image/jp2"}

#: Asset keys tried in order when no asset is named (after the ``visual`` role).
PREFERRED_KEYS = ("visual", "image", "analytic", "ortho", "data", "rgb", "pan")

#: Item properties copied into scene metadata: STAC name -> sitewatch name.
PROPERTY_NAMES = {
    "platform": "platform",
    "constellation": "constellation",
    "instruments": "instruments",
    "gsd": "gsd_m",
    "view:off_nadir": "off_nadir_deg",
    "view:azimuth": "view_azimuth_deg",
    "view:incidence_angle": "incidence_angle_deg",
    "view:sun_elevation": "sun_elevation_deg",
    "view:sun_azimuth": "sun_azimuth_deg",
    "proj:epsg": "epsg",
    "proj:code": "proj_code",
    "proj:transform": "proj_transform",
    "proj:shape": "proj_shape",
    "eo:cloud_cover": "cloud_cover_pct",
}


def is_url(source: str) -> bool:
    """True for http(s) and s3 URLs."""
    return source.split("://", 1)[0].lower() in {"http", "https", "s3"} and "://" in source


def read_item(source: str | Path) -> pystac.Item:
    """Read a STAC Item from a local JSON file or a URL.

    Raises:
        SceneError: unreadable, not JSON, or not a STAC Item (collections and catalogs are refused).
    """
    src = str(source)
    try:
        obj = pystac.read_file(src)
    except FileNotFoundError as e:
        raise SceneError(f"{src}: file not found") from e
    except Exception as e:  # noqa: BLE001 - pystac raises many kinds (JSON, HTTP, schema)
        raise SceneError(
            f"{src}: not a readable STAC Item ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    if not isinstance(obj, pystac.Item):
        raise SceneError(f"{src}: is a STAC {type(obj).__name__}, not an Item; open one of its items")
    return obj


def choose_asset(item: pystac.Item, key: str | None = None) -> tuple[str, pystac.Asset]:
    """Choose the asset to display.

    Order: the named ``key``; an asset with role ``visual``; the keys in :data:`PREFERRED_KEYS`
    with an image media type; any cloud-optimized GeoTIFF, then any GeoTIFF/JPEG/PNG data asset;
    ``rendered_preview`` (role ``overview``) as a last resort. Thumbnails are never chosen.

    Raises:
        SceneError: the named asset does not exist, or no asset is an image.
    """
    assets = item.assets
    where = item.get_self_href() or item.id
    if key is not None:
        if key not in assets:
            raise SceneError(f"{where}: no asset {key!r}; assets: {', '.join(assets) or 'none'}")
        return key, assets[key]

    def roles(a: pystac.Asset) -> set[str]:
        return set(a.roles or ())

    def is_image(a: pystac.Asset) -> bool:
        mt = (a.media_type or "").lower()
        return mt in _IMAGE_TYPES or (
            not mt and a.href.lower().endswith((".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2"))
        )

    ranked: list[tuple[int, str]] = []
    for k, a in assets.items():
        r = roles(a)
        if "thumbnail" in r or k == "thumbnail" or not is_image(a):
            continue
        if "visual" in r:
            rank = 0
        elif k in PREFERRED_KEYS:
            rank = 1 + PREFERRED_KEYS.index(k)
        elif (a.media_type or "") == _COG and "data" in r:
            rank = 20
        elif (a.media_type or "") in _TIFF_TYPES:
            rank = 30
        elif "overview" in r or k == "rendered_preview":
            rank = 100
        else:
            rank = 50
        ranked.append((rank, k))
    if not ranked:
        raise SceneError(f"{where}: no image asset among {', '.join(assets) or 'no assets'}")
    rank, k = min(ranked)
    if rank >= 100:
        log.warning("%s: only a preview asset (%s) is available; measurements will be coarse", where, k)
    return k, assets[k]


def item_metadata(item: pystac.Item, asset: pystac.Asset) -> dict[str, Any]:
    """Scene metadata from an Item and its asset (asset fields override item fields).

    Keys: ``platform``, ``constellation``, ``gsd_m``, ``off_nadir_deg``, ``view_azimuth_deg``,
    ``sun_elevation_deg``, ``epsg``, ``proj_transform`` ... plus ``stac_item`` (id), ``stac_collection``.
    """
    props: dict[str, Any] = dict(item.properties)
    props.update(asset.extra_fields or {})
    meta: dict[str, Any] = {"stac_item": item.id}
    if item.collection_id:
        meta["stac_collection"] = item.collection_id
    for stac_name, name in PROPERTY_NAMES.items():
        if props.get(stac_name) is not None:
            meta[name] = props[stac_name]
    return meta


def item_datetime(item: pystac.Item) -> datetime | None:
    """The Item's ``datetime``, else its ``start_datetime`` (ranges), else None."""
    if item.datetime is not None:
        return item.datetime
    start = item.properties.get("start_datetime")
    return pystac.utils.str_to_datetime(start) if start else None


def asset_href(item: pystac.Item, asset: pystac.Asset) -> str:
    """The asset's absolute href (relative hrefs resolve against the Item's location)."""
    href = asset.get_absolute_href() or asset.href
    if href.startswith("file://"):
        href = href[len("file://") :]
    return href


def search_stac(
    api_url: str,
    bbox: tuple[float, float, float, float] | list[float],
    datetime: str | None = None,
    collections: list[str] | str | None = None,
    limit: int = 10,
    *,
    stac_io: Any = None,
) -> list[pystac.Item]:
    """Search a STAC API for items over a bounding box.

    Args:
        api_url: root URL of the STAC API (its landing page).
        bbox: ``(west, south, east, north)`` in WGS84 degrees.
        datetime: a single time or an interval such as ``"2024-01-01/2024-03-31"`` (RFC 3339), or None.
        collections: collection id(s) to search, or None for all.
        limit: the most items returned.
        stac_io: a :class:`pystac_client.stac_api_io.StacApiIO` to use (custom headers, recorded responses).

    Returns:
        Items, at most ``limit``, in the API's order.

    Raises:
        SceneError: the API cannot be reached or does not support item search.
    """
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(api_url, stac_io=stac_io)
        search = client.search(
            bbox=list(bbox),
            datetime=datetime,
            collections=collections,
            max_items=limit,
            limit=min(limit, 100),
        )
        return list(search.items())
    except (APIError, OSError, NotImplementedError) as e:
        raise SceneError(f"{api_url}: STAC search failed ({type(e).__name__}: {e})") from e
