"""Pixels of each pass's scene for the map: web-mercator XYZ tiles (rio-tiler) and a whole-image preview.

Tiles read the scene a pass was scanned from (its stored path, never a path from the request).
A scene without its own georeference (a screenshot placed with ``--center``) gets the CRS and
transform stored on the pass, attached in a GDAL VRT around the file, before it is warped. Pixel-space
passes have no ground position: the map shows them in image pixels from ``image.jpg``.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, Any

import numpy as np
import rasterio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from rasterio.enums import Resampling
from rio_tiler.errors import NoOverviewWarning, TileOutsideBounds
from rio_tiler.io import Reader

from sitewatch.api._params import PathId
from sitewatch.api.cache import NOT_MODIFIED, pass_response
from sitewatch.api.context import ServerContext
from sitewatch.api.errors import BadParameterError
from sitewatch.api.security import require_read
from sitewatch.errors import SceneError
from sitewatch.types import Pass

router = APIRouter(prefix="/api", tags=["imagery"])

TILE_PX = 256
_PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}
#: Percentiles of the pixel values stretched to 0..255 for scenes that are not 8-bit.
STRETCH_PERCENTILES = (2.0, 98.0)


def ctx_of(request: Request) -> ServerContext:
    return request.app.state.ctx


def _empty_tile() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (TILE_PX, TILE_PX), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


_EMPTY = _empty_tile()


@contextmanager
def _dataset(p: Pass) -> Iterator[Any]:
    """The pass's scene as a rasterio dataset with a georeference (the file's, else the pass's).

    Raises:
        SceneError: the scene file cannot be opened.
        BadParameterError: the pass is in pixel space (no tiles; use ``image.jpg``).
    """
    from affine import Affine
    from rasterio.crs import CRS

    if p.crs is None or p.transform is None:
        raise BadParameterError(
            "pass_id", f"pass {p.id} is in image pixels (no georeference): use /api/passes/{p.id}/image.jpg"
        )
    with ExitStack() as stack:
        try:
            src = stack.enter_context(rasterio.open(p.scene_path))
        except rasterio.errors.RasterioIOError as e:
            raise SceneError(
                f"scene of pass {p.id} cannot be read: {p.scene_path} ({str(e).splitlines()[0]})"
            ) from e
        if src.crs is None:
            vrt = _georeferenced_vrt(src, CRS.from_user_input(p.crs), Affine(*p.transform[:6]))
            src.close()
            src = stack.enter_context(rasterio.open(vrt))
        yield src


def _georeferenced_vrt(src: Any, crs: Any, transform: Any) -> str:
    """A GDAL VRT (XML text) of ``src`` with the given CRS and pixel → CRS transform.

    GDAL cannot warp a file that has no geotransform even when one is supplied, so the stored
    georeference of the pass is attached in a VRT wrapped around the file (nothing is copied).
    """
    from xml.sax.saxutils import escape

    gt = ", ".join(repr(float(v)) for v in transform.to_gdal())
    dtype = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}.get(
        src.dtypes[0], "Byte"
    )
    bands = "".join(
        f'<VRTRasterBand dataType="{dtype}" band="{i}"><SimpleSource><SourceFilename relativeToVRT="0">'
        f"{escape(str(src.name))}</SourceFilename><SourceBand>{i}</SourceBand></SimpleSource></VRTRasterBand>"
        for i in range(1, src.count + 1)
    )
    return (f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">'
            f"<SRS>{escape(crs.to_wkt())}</SRS><GeoTransform>{gt}</GeoTransform>"
            f"{bands}</VRTDataset>")  # fmt: skip


def _bands(src: Any) -> list[int]:
    return [1, 2, 3] if src.count >= 3 else [1]


def _stretch(ctx: ServerContext, p: Pass, src: Any) -> tuple[float, float] | None:
    """The value range stretched to 0..255 (None for 8-bit scenes), from a small overview, cached."""
    if src.dtypes[0] == "uint8":
        return None
    key = (p.id, p.created)
    if key not in ctx.pixel_ranges:
        scale = max(1, max(src.width, src.height) // 1024)
        data = src.read(_bands(src), out_shape=(len(_bands(src)), src.height // scale, src.width // scale),
                        resampling=Resampling.nearest, masked=True)  # fmt: skip
        values = data.compressed()
        lo, hi = np.percentile(values, STRETCH_PERCENTILES) if values.size else (0.0, 1.0)
        ctx.pixel_ranges[key] = (float(lo), float(max(hi, lo + 1e-6)))
    return ctx.pixel_ranges[key]


@router.get(
    "/passes/{pass_id}/tiles/{z}/{x}/{y}.png",
    dependencies=[Depends(require_read)],
    response_class=Response,
    responses=_PNG,
)
def tile(
    request: Request,
    pass_id: PathId,
    z: Annotated[int, Path(ge=0, le=24)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
) -> Response:
    """A 256 px web-mercator (XYZ) tile of the pass's scene, PNG with transparency outside it."""
    if x >= 2**z or y >= 2**z:
        raise BadParameterError("x" if x >= 2**z else "y", f"tile index out of range at zoom {z}")
    ctx = ctx_of(request)
    p = ctx.store.get_pass(pass_id)
    headers = {"Cache-Control": "max-age=3600"}
    with _dataset(p) as src, Reader(None, dataset=src) as reader, warnings.catch_warnings():
        warnings.simplefilter("ignore", NoOverviewWarning)  # small scenes read fast without overviews
        stretch = _stretch(ctx, p, src)
        try:
            img = reader.tile(x, y, z, tilesize=TILE_PX, indexes=_bands(src))
        except TileOutsideBounds:
            return Response(_EMPTY, media_type="image/png", headers=headers)
    if stretch is not None:
        img = img.rescale(in_range=(stretch,) * img.count)
    return Response(img.render(img_format="PNG"), media_type="image/png", headers=headers)


@router.get("/passes/{pass_id}/image.jpg", dependencies=[Depends(require_read)], response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, **NOT_MODIFIED})  # fmt: skip
async def preview(
    request: Request, pass_id: PathId, max_px: Annotated[int, Query(ge=64, le=8192)] = 2048
) -> Response:
    """The whole scene of a pass as one JPEG, its longer side at most ``max_px`` (for pixel-space passes).

    Nodata shows black. Cached while the pass exists (:mod:`sitewatch.api.cache`), with an ``ETag``.
    """
    ctx = ctx_of(request)
    return await pass_response(
        request, pass_id, "image/jpeg", lambda: _preview_jpeg(ctx.store.get_pass(pass_id), max_px)
    )


def _preview_jpeg(p: Pass, max_px: int) -> bytes:
    from PIL import Image

    from sitewatch.imagery import open_scene

    with open_scene(p.scene_path, gsd_m=p.gsd_m, force=True) as scene:  # as stored
        scale = max(1.0, max(scene.width, scene.height) / max_px)
        shape = (max(1, round(scene.height / scale)), max(1, round(scene.width / scale)))
        rgb, _valid = scene.read_rgb(None, out_shape=shape)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()
