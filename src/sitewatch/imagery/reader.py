"""Open any supported image as a :class:`~sitewatch.imagery.base.Scene`.

Supported: GeoTIFF/COG in any CRS (local or http/https/s3 through GDAL ``/vsicurl/``), JPEG/PNG
screenshots (georeferenced by a world file, GCPs, or a centre + rotation anchor; else pixel
space measured with a given GSD), and STAC Items (local JSON or URL).
"""

from __future__ import annotations

import logging
import math
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_gcps

from sitewatch.errors import GeoreferenceError, SceneError
from sitewatch.imagery import stac
from sitewatch.imagery._time import parse_acquired
from sitewatch.imagery._vsicurl import forget_remote
from sitewatch.imagery.base import Scene
from sitewatch.imagery.georef import gsd_from_transform, transform_from_anchor
from sitewatch.imagery.raster import RasterScene

log = logging.getLogger(__name__)

#: Smallest accepted image side, pixels (anything smaller holds no recognisable object).
MIN_SIDE_PX = 16

#: Accepted ground sample distances, metres per pixel (outside: refused unless forced).
GSD_RANGE_M = (0.05, 30.0)

#: Decoded bytes per file byte above which an image decoded whole is refused as a decompression
#: bomb (deflate cannot compress better than about 1032:1; real imagery stays far below).
MAX_DECODE_RATIO = 1100.0

#: Largest image, pixels, of formats that are decoded whole (PNG, JPEG, GIF, BMP, WebP): Pillow's limit.
MAX_WHOLE_DECODE_PX = 178_956_970

_WHOLE_DECODE_DRIVERS = {"PNG", "JPEG", "GIF", "BMP", "WEBP"}

#: A given GSD that differs from the georeference's by more than this fraction is logged.
_GSD_MISMATCH = 0.10

_STAC_SUFFIXES = (".json", ".geojson")
_IMAGE_SUFFIXES = (
    ".tif",
    ".tiff",
    ".jpg",
    ".jpeg",
    ".png",
    ".jp2",
    ".vrt",
    ".img",
    ".ntf",
    ".webp",
    ".gif",
    ".bmp",
)


def _is_stac(src: str) -> bool:
    """STAC Item JSON: by suffix; URLs without an image suffix (API item links); local files starting with
    '{'."""
    lower = src.lower().split("?", 1)[0]
    if lower.endswith(_STAC_SUFFIXES):
        return True
    if stac.is_url(src):
        return not lower.endswith(_IMAGE_SUFFIXES)
    try:
        with open(src, "rb") as f:
            return f.read(64).lstrip()[:1] == b"{"
    except OSError:
        return False


def open_scene(
    source: str | Path,
    *,
    gsd_m: float | None = None,
    acquired: datetime | date | str | None = None,
    center: tuple[float, float] | None = None,
    rotation_deg: float = 0.0,
    asset: str | None = None,
    crs: CRS | str | None = None,
    force: bool = False,
) -> Scene:
    """Open an image or a STAC Item as a scene.

    Args:
        source: path or URL (http/https/s3) of a GeoTIFF/COG, JPEG/PNG, or STAC Item JSON.
        gsd_m: metres per pixel; overrides the georeference's (needed for screenshots).
        acquired: acquisition time (ISO 8601 string, date or datetime); overrides file metadata.
        center: ``(lat, lon)`` of the image centre in WGS84 degrees, to georeference a screenshot
            (needs ``gsd_m``); overrides a georeference found in the file.
        rotation_deg: with ``center``: bearing of image-up, degrees clockwise from true north.
        asset: STAC asset key to open (default: the visual asset, see :func:`stac.choose_asset`).
        crs: CRS of a world-file transform that comes without one (default: EPSG:4326 when the
            transform is plainly in degrees).
        force: accept a given GSD outside :data:`GSD_RANGE_M`.

    Returns:
        A :class:`RasterScene`. Pixel-space scenes have ``crs``/``transform`` None; ``gsd_m`` is None
        when neither given nor derivable (the caller decides whether that is an error).

    Raises:
        SceneError: missing, empty, corrupt, not an image, too small, unsupported bands/type, bad time
            (or outside 1960 .. tomorrow), a decompression bomb.
        GeoreferenceError: an anchor without GSD, a GSD outside :data:`GSD_RANGE_M` (unless ``force``),
            or an unusable georeference (degenerate, or a CRS not relatable to WGS84).
    """
    src = str(source)
    if rotation_deg and center is None:
        log.info("%s: rotation_deg is ignored without a centre anchor", src)
    if _is_stac(src):
        return _open_stac(
            src,
            gsd_m=gsd_m,
            acquired=acquired,
            center=center,
            rotation_deg=rotation_deg,
            asset=asset,
            crs=crs,
            force=force,
        )
    return _open_raster(
        src, gsd_m=gsd_m, acquired=acquired, center=center, rotation_deg=rotation_deg, crs=crs, force=force
    )


def short_path(path: str, keep: int = 100) -> str:
    """A path for a one-line message: its start and end around an ellipsis when longer than ``keep``."""
    return path if len(path) <= keep else f"{path[: keep // 2]}…{path[-(keep // 2 - 1) :]}"


def check_gsd(gsd_m: float | None, what: str, *, force: bool = False) -> None:
    """Refuse a GSD that is not a positive number, or outside :data:`GSD_RANGE_M` unless ``force``.

    Raises:
        GeoreferenceError: naming ``what`` and the accepted range.
    """
    if gsd_m is None:
        return
    if not (math.isfinite(gsd_m) and gsd_m > 0):
        raise GeoreferenceError(f"{what}: GSD must be a positive number of metres per pixel, got {gsd_m}")
    lo, hi = GSD_RANGE_M
    if not force and not lo <= gsd_m <= hi:
        raise GeoreferenceError(
            f"{what}: GSD {gsd_m:g} m per pixel is outside {lo:g}-{hi:g} m (pass --force if it is right)"
        )


def _check_local(src: str) -> None:
    p = Path(src)
    try:
        p.stat()
    except FileNotFoundError:
        pass
    except OSError as e:  # e.g. a name longer than the file system allows (Errno 36)
        raise SceneError(f"{short_path(src)}: cannot open ({e.strerror or e})") from e
    if not p.exists():
        raise SceneError(f"{src}: file not found")
    if p.is_dir():
        raise SceneError(f"{src}: is a directory, not an image")
    if p.stat().st_size == 0:
        raise SceneError(f"{src}: empty file (0 bytes)")


def _open_dataset(src: str) -> rasterio.io.DatasetReader:
    remote = stac.is_url(src)
    if not remote:
        _check_local(src)
    env = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "2"} if remote else {}
    try:
        with rasterio.Env(**env), warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(src)
    except rasterio.errors.RasterioIOError as e:
        if (
            remote
        ):  # GDAL would remember the failure for the life of the process; a later try must fetch afresh
            forget_remote(src)
        msg = str(e).splitlines()[0] if str(e) else "unreadable"
        if "not recognized as" in msg or "not a supported" in msg:
            raise SceneError(f"{src}: not an image (format not recognised)") from e
        raise SceneError(f"{src}: cannot open image ({msg})") from e
    except rasterio.errors.RasterioError as e:
        raise SceneError(f"{src}: cannot open image ({e})") from e
    if ds.width < MIN_SIDE_PX or ds.height < MIN_SIDE_PX:
        ds.close()
        raise SceneError(
            f"{src}: image too small ({ds.width}x{ds.height} px); minimum is {MIN_SIDE_PX}x{MIN_SIDE_PX}"
        )
    try:
        _check_bomb(ds, src, remote)
    except SceneError:
        ds.close()
        raise
    try:
        # A tiny decimated read decodes the data (from overviews where they exist): catches corrupt files
        # early.
        ds.read(1, out_shape=(min(8, ds.height), min(8, ds.width)), resampling=Resampling.nearest)
    except rasterio.errors.RasterioError as e:
        ds.close()
        raise SceneError(
            f"{src}: corrupt image data ({str(e).splitlines()[0] if str(e) else 'read failed'})"
        ) from e
    return ds


def _check_bomb(ds: rasterio.io.DatasetReader, src: str, remote: bool) -> None:
    """Refuse, before decoding, an image whose declared size its file cannot plausibly hold.

    Raises:
        SceneError: an image decoded whole (PNG, JPEG, GIF, BMP, WebP) that is too large, or that declares
            more pixels than its file can hold (a decompression bomb, or a truncated file).
    """
    import numpy as np

    px = ds.width * ds.height
    if ds.driver in _WHOLE_DECODE_DRIVERS and px > MAX_WHOLE_DECODE_PX:
        raise SceneError(f"{src}: {ds.width}x{ds.height} px is too large for a {ds.driver} image, which is "
                         f"decoded whole (limit {MAX_WHOLE_DECODE_PX:,} px); "
                         "convert it to a tiled GeoTIFF")  # fmt: skip
    if remote or ds.driver not in _WHOLE_DECODE_DRIVERS:
        return  # tiled rasters are read by windows: a sparse one costs only the windows read
    decoded = px * ds.count * np.dtype(ds.dtypes[0]).itemsize
    try:
        size = max(Path(src).stat().st_size, 1)
    except OSError:  # not a plain file (a GDAL virtual path): nothing to compare against
        return
    if decoded / size > MAX_DECODE_RATIO:
        raise SceneError(f"{src}: declares {ds.width}x{ds.height} px ({decoded / 1e9:.1f} GB decoded) "
                         f"in a {size / 1e3:.0f} kB file: corrupt, truncated or a decompression bomb; "
                         "refused")  # fmt: skip


def _check_transform(
    transform: Affine | None, crs: CRS | None, src: str, size: tuple[int, int] | None = None
) -> None:
    """Refuse a georeference that cannot be inverted, puts the image off the Earth, or has no WGS84 relation.

    Raises:
        GeoreferenceError: zero pixel size, collinear control points (whose fit may also give an
            absurd pixel size), or a local/engineering CRS.
    """
    if transform is None or crs is None:
        return
    det = transform.a * transform.e - transform.b * transform.d
    # The pixel axes must span the plane: |det| is |x axis| |y axis| sin(angle); collinear control
    # points leave a fit whose axes are parallel up to rounding, so the angle is judged, not |det|.
    span = math.hypot(transform.a, transform.d) * math.hypot(transform.b, transform.e)
    if not all(math.isfinite(v) for v in transform[:6]) or span == 0 or abs(det) < 1e-9 * span:
        raise GeoreferenceError(
            f"{src}: the georeference is degenerate (zero pixel size or collinear control points)"
        )
    from pyproj import Transformer
    from pyproj.exceptions import CRSError, ProjError

    try:
        t = Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True)
        lon, lat = t.transform(*(transform * (0.5, 0.5)), errcheck=True)
    except (CRSError, ProjError) as e:
        raise GeoreferenceError(
            f"{src}: its CRS cannot be related to WGS84 longitude/latitude (a local or engineering CRS?)"
        ) from e
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeoreferenceError(
            f"{src}: its CRS cannot be related to WGS84 longitude/latitude (a local or engineering CRS?)"
        )
    if size is not None and crs.is_geographic:
        w, h = size
        corners = [transform * (x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
        on_earth = (
            math.isfinite(x) and math.isfinite(y) and abs(x) <= 540 and abs(y) <= 90.5 for x, y in corners
        )
        if not all(on_earth):
            raise GeoreferenceError(
                f"{src}: the georeference is degenerate (it places the image off the Earth: "
                "wrong pixel size or collinear control points)"
            )


def _collinear(points: list[tuple[float, float]]) -> bool:
    """Whether the points lie on one line (or one point), to rounding: the smaller singular value
    of their centred coordinates is below 1e-9 of the larger."""
    xy = np.asarray(points, dtype=float)
    if len(xy) < 3 or not np.isfinite(xy).all():
        return True
    sv = np.linalg.svd(xy - xy.mean(axis=0), compute_uv=False)
    return bool(sv[0] == 0 or sv[-1] < 1e-9 * sv[0])


def _file_georef(
    ds: rasterio.io.DatasetReader, src: str, crs: CRS | str | None
) -> tuple[CRS | None, Affine | None, str | None]:
    """(crs, transform, how) from the file itself: embedded georeference, GCPs, or a world file."""
    if ds.crs is not None and not ds.transform.is_identity:
        return ds.crs, ds.transform, "file"
    gcps, gcp_crs = ds.gcps
    if gcps:
        if len(gcps) < 3:
            raise GeoreferenceError(f"{src}: {len(gcps)} ground control points; at least 3 are needed")
        if _collinear([(g.col, g.row) for g in gcps]) or _collinear([(g.x, g.y) for g in gcps]):
            # Checked on the points themselves: the fit of collinear points is singular, and whether
            # its rounding leaves a transform that looks invertible varies from run to run.
            raise GeoreferenceError(
                f"{src}: the georeference is degenerate (zero pixel size or collinear control points)"
            )
        use_crs = gcp_crs or (CRS.from_user_input(crs) if crs else CRS.from_epsg(4326))
        return use_crs, from_gcps(gcps), "gcps"
    if not ds.transform.is_identity:
        # A world file (.jgw/.pgw/.wld/.tfw) gives a transform but no CRS.
        if crs is not None:
            return CRS.from_user_input(crs), ds.transform, "world-file"
        t = ds.transform
        corners = [t * (0, 0), t * (ds.width, ds.height)]
        degrees = abs(t.a) < 0.01 and all(-180 <= x <= 180 and -90 <= y <= 90 for x, y in corners)
        if degrees:
            log.info("%s: world file without CRS taken as WGS84 lon/lat degrees", src)
            return CRS.from_epsg(4326), t, "world-file"
        raise GeoreferenceError(f"{src}: world file has no CRS and is not in degrees; give the CRS (crs=...)")
    return None, None, None


def _tiff_datetime(ds: rasterio.io.DatasetReader) -> str | None:
    tags = ds.tags()
    for key in ("TIFFTAG_DATETIME", "ACQUISITIONDATETIME", "DATETIME"):
        if tags.get(key):
            return tags[key]
    imagery = ds.tags(ns="IMAGERY")
    return imagery.get("ACQUISITIONDATETIME")


def _open_raster(
    src: str,
    *,
    gsd_m: float | None,
    acquired: datetime | date | str | None,
    center: tuple[float, float] | None,
    rotation_deg: float,
    crs: CRS | str | None,
    extra: dict[str, Any] | None = None,
    stac_acquired: datetime | None = None,
    stac_georef: tuple[CRS, Affine] | None = None,
    fallback_gsd_m: float | None = None,
    force: bool = False,
) -> RasterScene:
    when = parse_acquired(acquired, source=src)  # validate user input before touching the file
    ds = _open_dataset(src)
    try:
        check_gsd(gsd_m, src, force=force)
        scene_crs, transform, how = _file_georef(ds, src, crs)
        if scene_crs is None and stac_georef is not None:
            scene_crs, transform = stac_georef
            how = "stac"
        if center is not None:
            if gsd_m is None:
                raise GeoreferenceError(f"{src}: a centre anchor needs a GSD (metres per pixel)")
            if how is not None:
                log.info("%s: the centre anchor replaces the file's own georeference", src)
            scene_crs, transform = transform_from_anchor(
                ds.width, ds.height, center=center, gsd_m=gsd_m, rotation_deg=rotation_deg
            )
            how = "anchor"
        _check_transform(transform, scene_crs, src, (ds.width, ds.height))
        derived = gsd_from_transform(scene_crs, transform, ds.width, ds.height)
        gsd = gsd_m if gsd_m is not None else derived
        if gsd is None:
            gsd = fallback_gsd_m
        if gsd_m is not None and derived is not None and abs(gsd_m - derived) > _GSD_MISMATCH * derived:
            log.warning(
                "%s: given GSD %.3f m differs from the georeference's %.3f m; using the given one",
                src,
                gsd_m,
                derived,
            )
        if when is None:
            when = stac_acquired
        if when is None:
            tag = _tiff_datetime(ds)
            if tag:
                try:
                    when = parse_acquired(tag, source=src)
                except SceneError:
                    log.warning("%s: ignoring unparseable date tag %r", src, tag)
        metadata: dict[str, Any] = {
            "driver": ds.driver,
            "bands": ds.count,
            "dtype": ds.dtypes[0],
            "overviews": len(ds.overviews(1)),
            "georeference": how,
        }
        metadata.update(extra or {})
        return RasterScene(
            ds, src, crs=scene_crs, transform=transform, gsd_m=gsd, acquired=when, metadata=metadata
        )
    except BaseException:
        ds.close()
        raise


def _open_stac(
    src: str,
    *,
    gsd_m: float | None,
    acquired: datetime | date | str | None,
    center: tuple[float, float] | None,
    rotation_deg: float,
    asset: str | None,
    crs: CRS | str | None,
    force: bool = False,
) -> RasterScene:
    if not stac.is_url(src):
        _check_local(src)
    item = stac.read_item(src)
    return _open_item(
        item,
        src,
        gsd_m=gsd_m,
        acquired=acquired,
        center=center,
        rotation_deg=rotation_deg,
        asset=asset,
        crs=crs,
        force=force,
    )


def open_item(
    item: pystac.Item | dict[str, Any], *, asset: str | None = None, gsd_m: float | None = None
) -> RasterScene:
    """Open a STAC Item held in memory (e.g. one returned by an API search) as a scene.

    Relative asset hrefs resolve against the item's ``self`` link. Remote assets are read through
    GDAL ``/vsicurl/`` (range requests; only the windows asked for are fetched).

    Args:
        item: the Item, or its dict (as a STAC API returns it).
        asset: asset key to open (default: the visual asset, see :func:`stac.choose_asset`).
        gsd_m: metres per pixel, overriding the georeference's.

    Raises:
        SceneError: a malformed item, no usable image asset, or an asset that cannot be read.
    """
    if isinstance(item, dict):
        where = str(item.get("id") or "STAC item")
        try:
            item = pystac.Item.from_dict(item)
        except Exception as e:  # noqa: BLE001 - pystac raises many kinds (KeyError, ValueError, STACTypeError)
            raise SceneError(
                f"{where}: malformed STAC item ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from e
    src = item.get_self_href() or item.id
    return _open_item(
        item, src, gsd_m=gsd_m, acquired=None, center=None, rotation_deg=0.0, asset=asset, crs=None
    )


def _open_item(
    item: pystac.Item,
    src: str,
    *,
    gsd_m: float | None,
    acquired: datetime | date | str | None,
    center: tuple[float, float] | None,
    rotation_deg: float,
    asset: str | None,
    crs: CRS | str | None,
    force: bool = False,
) -> RasterScene:
    key, chosen = stac.choose_asset(item, asset)
    href = stac.asset_href(item, chosen)
    meta = stac.item_metadata(item, chosen)
    meta["stac_asset"] = key
    meta["stac_source"] = src
    georef = None
    if meta.get("proj_transform") and (meta.get("epsg") or meta.get("proj_code")):
        t = meta["proj_transform"]
        georef = (CRS.from_user_input(meta.get("proj_code") or f"EPSG:{meta['epsg']}"), Affine(*t[:6]))
    # The item's nominal GSD serves only an asset that cannot measure its own (pixel space).
    nominal = float(meta["gsd_m"]) if meta.get("gsd_m") is not None else None
    try:
        return _open_raster(
            href,
            gsd_m=gsd_m,
            acquired=acquired,
            center=center,
            rotation_deg=rotation_deg,
            crs=crs,
            extra=meta,
            stac_acquired=stac.item_datetime(item),
            stac_georef=georef,
            fallback_gsd_m=nominal,
            force=force,
        )
    except SceneError as e:
        raise SceneError(f"{src}: asset {key!r}: {e}") from e
