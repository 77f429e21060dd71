"""Open scenes: GeoTIFF/COG in any CRS, screenshots with a GSD, STAC items; windowed RGB reads."""

from sitewatch.imagery.base import ArrayScene, Scene

__all__ = ["ArrayScene", "Scene"]
