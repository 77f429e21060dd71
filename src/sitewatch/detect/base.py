"""The :class:`Detector` interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from rasterio.windows import Window

from sitewatch.imagery.base import Scene
from sitewatch.types import Detection

#: Called with (tiles done, tiles total) as sliced inference advances.
ProgressCallback = Callable[[int, int], None]


class Detector(ABC):
    """Finds objects of :data:`~sitewatch.types.CATEGORIES` in a scene.

    Attributes:
        name: model name, e.g. ``"sitewatch-det"``.
        version: model version string.
    """

    name: str
    version: str

    @abstractmethod
    def detect(
        self,
        scene: Scene,
        *,
        window: Window | None = None,
        gsd_m: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Detection]:
        """Detect objects in ``scene`` (or only in ``window`` of it).

        Args:
            scene: the image.
            window: pixel window of the scene to search (default: all of it).
            gsd_m: metres per pixel, overriding ``scene.gsd_m`` (None: use the scene's, if any).
            progress: optional callback for progress bars.

        Returns:
            Detections with boxes in *scene* pixel coordinates (not window coordinates),
            ``footprint``/``measurement`` unset (later stages fill them).
        """

    @property
    def label(self) -> str:
        """``"name version"`` as stored with each pass."""
        return f"{self.name} {self.version}"
