"""A site's passes as a STAC catalog: the site a Collection, each pass an Item (pystac).

Layout of the folder written by :func:`write_stac` (a self-contained catalog, relative links)::

    DIR/collection.json                     the site: AOI extent, time span of the passes
    DIR/<site>-pass-<id>/<site>-pass-<id>.json      one Item per pass
    DIR/<site>-pass-<id>/detections.geojson         its detections (RFC 7946), the label asset

Each Item's geometry is the scanned footprint (WGS84), ``datetime`` the acquisition time,
``gsd`` the ground sample distance (metres); the scene is the ``scene`` asset (role ``data``,
href as stored), and the detections are described with the STAC ``label`` extension: vector
labels for the ``detection`` task, classes by ``category``, counts per category as an overview.
Passes without an acquisition time or ground position (pixel-space screenshots) cannot be STAC
Items and are left out with a log line.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pystac
import shapely
from pystac.extensions.label import (
    LabelClasses,
    LabelCount,
    LabelExtension,
    LabelOverview,
    LabelTask,
    LabelType,
)

from sitewatch.errors import ReportError
from sitewatch.types import CATEGORIES, Pass

log = logging.getLogger(__name__)

#: The label extension version declared. Its v1.0.1 schema as published still requires the
#: v1.0.0 URI in ``stac_extensions``; the fields are the same, so v1.0.0 is declared.
LABEL_SCHEMA_URI = "https://stac-extensions.github.io/label/v1.0.0/schema.json"
_SCENE_TYPES = {".tif": pystac.MediaType.GEOTIFF, ".tiff": pystac.MediaType.GEOTIFF,
                ".jpg": pystac.MediaType.JPEG, ".jpeg": pystac.MediaType.JPEG, ".png": pystac.MediaType.PNG,
                ".json": pystac.MediaType.JSON}  # fmt: skip


def item_id(p: Pass) -> str:
    return f"{p.site}-pass-{p.id}"


def pass_item(p: Pass, detections: gpd.GeoDataFrame) -> pystac.Item:
    """The STAC Item of one georeferenced, dated pass (detections asset added by :func:`write_stac`).

    Raises:
        ReportError: the pass has no acquisition time or no ground footprint.
    """
    if p.acquired is None or not p.footprint_wkt:
        raise ReportError(f"pass {p.id}: a STAC Item needs an acquisition time and a ground footprint")
    geom = shapely.from_wkt(p.footprint_wkt)
    item = pystac.Item(
        id=item_id(p),
        geometry=shapely.geometry.mapping(geom),
        bbox=list(geom.bounds),
        datetime=p.acquired.astimezone(UTC),
        properties={
            "title": f"{p.site} pass {p.id}" + (" (SIMULATED imagery)" if p.simulated else ""),
            "description": f"{len(p.detections)} detections by {p.model}"
            + (f"; {p.aoi_coverage:.0%} of the site's AOI covered" if p.aoi_coverage is not None else ""),
        },
    )
    if p.gsd_m:
        item.common_metadata.gsd = float(p.gsd_m)
    platform = (p.metadata or {}).get("platform")
    if platform:
        item.common_metadata.platform = str(platform)
    scene = p.scene_path if "://" in p.scene_path else str(Path(p.scene_path).resolve())
    item.add_asset(
        "scene",
        pystac.Asset(
            href=scene,
            title="the scanned scene",
            media_type=_SCENE_TYPES.get(Path(p.scene_path).suffix.lower()),
            roles=["data"],
        ),
    )
    counts = detections["category"].value_counts().to_dict() if len(detections) else {}
    label = LabelExtension.ext(item, add_if_missing=True)
    label.apply(
        label_description=(
            f"Objects detected by {p.model}: oriented boxes on the ground, one feature per detection"
        ),
        label_type=LabelType.VECTOR,
        label_properties=["category", "best_type", "score"],
        label_classes=[LabelClasses.create(classes=list(CATEGORIES), name="category")],
        label_tasks=[LabelTask.DETECTION],
        label_methods=["automated"],
        label_overviews=[
            LabelOverview.create(
                property_key="category",
                counts=[LabelCount.create(c, int(counts.get(c, 0))) for c in CATEGORIES],
            )
        ],
    )
    item.stac_extensions = [
        LABEL_SCHEMA_URI if u == LabelExtension.get_schema_uri() else u for u in item.stac_extensions
    ]
    return item


def site_collection(site: Any, passes: Sequence[Pass]) -> pystac.Collection:
    """The Collection of a site: spatial extent the AOI (or the passes' footprints), temporal the passes."""
    name = getattr(site, "name", None) or passes[0].site
    if getattr(site, "aoi", None) is not None:
        bounds = site.aoi.bounds
    else:
        bounds = shapely.union_all([shapely.from_wkt(p.footprint_wkt) for p in passes]).bounds
    times = sorted(p.acquired.astimezone(UTC) for p in passes if p.acquired is not None)
    return pystac.Collection(
        id=name,
        title=getattr(site, "title", None) or name,
        description=f"Passes of the watched site {name} scanned by sitewatch"
        + (f": {site.notes}" if getattr(site, "notes", "") else ""),
        extent=pystac.Extent(
            pystac.SpatialExtent([list(bounds)]), pystac.TemporalExtent([[times[0], times[-1]]])
        ),
        license="other",
        keywords=["sitewatch", getattr(site, "kind", "site")],
    )


def write_stac(
    passes: Sequence[Pass], site: Any, folder: str | Path, *, frame: gpd.GeoDataFrame, overwrite: bool = False
) -> Path:
    """Write ``passes`` of ``site`` as a self-contained STAC catalog in ``folder``.

    The catalog is built in a temporary folder beside ``folder`` and renamed into place.

    Args:
        passes: the passes, oldest first.
        site: the :class:`~sitewatch.sites.Site` or None.
        folder: output folder; must not exist (or, with ``overwrite``, hold a previous STAC export).
        frame: the detections table (:func:`sitewatch.report.exports.detections_frame`).
        overwrite: replace a previous STAC export in ``folder``.

    Returns:
        The path of ``collection.json``.

    Raises:
        ReportError: no pass can be an Item, the folder exists (and is not a previous export, or
            ``overwrite`` is False), or it cannot be written.
    """
    from sitewatch.report.exports import FORMATS, ExportJob

    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir() or folder.is_symlink():
            raise ReportError(f"{folder}: exists and is not a folder; STAC export not written")
        if not overwrite:
            raise ReportError(f"{folder}: exists; use --overwrite to replace it")
        if any(folder.iterdir()) and not (folder / "collection.json").is_file():
            raise ReportError(f"{folder}: not empty and not a STAC export (no collection.json); not replaced")
    if not folder.parent.is_dir():
        raise ReportError(f"{folder}: folder {folder.parent} does not exist")
    usable = [p for p in passes if p.acquired is not None and p.footprint_wkt]
    skipped = [p.id for p in passes if p not in usable]
    if skipped:
        log.warning(
            "passes %s left out of the STAC catalog (no acquisition time or no ground position)", skipped
        )
    if not usable:
        raise ReportError(
            f"{folder}: no pass has an acquisition time and a ground position; nothing to write as STAC"
        )
    collection = site_collection(site, usable)
    # no dot after the prefix: pystac takes a root with a suffix for a file and writes beside it
    tmp = Path(tempfile.mkdtemp(prefix=".sitewatch-stac-", dir=folder.parent))
    try:
        items = []
        for p in usable:
            dets = frame[frame["pass_id"] == p.id]
            item = pass_item(p, dets)
            collection.add_item(item)
            items.append((item, dets))
        collection.normalize_hrefs(str(tmp))
        for item, dets in items:
            labels = Path(item.self_href).parent / "detections.geojson"
            labels.parent.mkdir(parents=True, exist_ok=True)
            FORMATS["geojson"].write(ExportJob(dets, [], None), labels)
            item.add_asset(
                "detections",
                pystac.Asset(
                    href="./detections.geojson",
                    title="detections (RFC 7946 GeoJSON)",
                    media_type=pystac.MediaType.GEOJSON,
                    roles=["labels", "labels-vector"],
                ),
            )
        collection.update_extent_from_items()
        if getattr(site, "aoi", None) is not None:  # the site's extent is its AOI, not just what was scanned
            collection.extent.spatial = pystac.SpatialExtent([list(site.aoi.bounds)])
        collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        if folder.exists():
            old = folder.with_name(f".sitewatch-stac-old-{datetime.now(UTC):%Y%m%d%H%M%S%f}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except OSError as e:
        raise ReportError(f"{folder}: cannot write STAC export ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / "collection.json"
