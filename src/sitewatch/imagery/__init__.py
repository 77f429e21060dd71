"""Open scenes: GeoTIFF/COG in any CRS, screenshots with a GSD, STAC items; windowed RGB reads."""

from sitewatch.imagery.base import ArrayScene, Scene
from sitewatch.imagery.georef import (
    Georef,
    coverage,
    footprint_wgs84,
    gsd_of,
    lonlat_to_pixel,
    pixel_to_lonlat,
    window_for_polygon,
)
from sitewatch.imagery.raster import RasterScene
from sitewatch.imagery.reader import MIN_SIDE_PX, open_item, open_scene
from sitewatch.imagery.stac import search_stac

__all__ = [
    "MIN_SIDE_PX",
    "ArrayScene",
    "Georef",
    "RasterScene",
    "Scene",
    "coverage",
    "footprint_wgs84",
    "gsd_of",
    "lonlat_to_pixel",
    "open_item",
    "open_scene",
    "pixel_to_lonlat",
    "search_stac",
    "window_for_polygon",
]
