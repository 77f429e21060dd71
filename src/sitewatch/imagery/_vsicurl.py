"""Forget what GDAL's ``/vsicurl/`` cache holds about a URL (a 404, a size, blocks), so it is fetched afresh.

GDAL caches the state of remote files for the life of the process: a watcher that met a missing
asset would go on seeing it missing after it is published. rasterio does not expose
``VSICurlPartialClearCache``, so it is called from the GDAL library rasterio loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from pathlib import Path

log = logging.getLogger(__name__)


@functools.cache
def _gdal() -> ctypes.CDLL | None:
    import rasterio

    libs = sorted((Path(rasterio.__file__).parent.parent / "rasterio.libs").glob("libgdal*.so*"))
    name = str(libs[0]) if libs else ctypes.util.find_library("gdal")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)  # the already loaded library: same handle, same cache
        lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
        return lib
    except (OSError, AttributeError) as e:
        log.debug("GDAL library %s not usable to clear the /vsicurl/ cache: %s", name, e)
        return None


def forget_remote(url: str) -> None:
    """Drop the cached state of ``url`` (http/https) from GDAL's ``/vsicurl/`` cache; no-op where
    unsupported."""
    lib = _gdal()
    if lib is not None:
        lib.VSICurlPartialClearCache(f"/vsicurl/{url}".encode())
