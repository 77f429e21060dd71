"""Settings, read from the environment (``SITEWATCH_*``) and passed down explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """Where the embedded store and default outputs live: ``$SITEWATCH_HOME`` or ``~/.sitewatch``."""
    return Path.home() / ".sitewatch"


class Settings(BaseSettings):
    """sitewatch settings.

    Attributes:
        home: folder for the embedded store and caches.
        store_url: SQLAlchemy URL of the store; default ``sqlite:///<home>/sitewatch.db``.
            ``postgresql://...`` selects PostgreSQL/PostGIS.
        model: path of an ONNX detector; default the bundled model.
        score_threshold: minimum detector score kept in every category (``SITEWATCH_SCORE_THRESHOLD``;
            read by :class:`~sitewatch.detect.onnx.OnnxDetector`, so by detect, scan and evaluate),
            or None for the model's own per-category thresholds.
        detect_max_pixels: largest image, pixels, that ``sitewatch detect`` runs on whole
            (``SITEWATCH_DETECT_MAX_PIXELS``; default 40 000 x 40 000); larger images are scanned by AOI.
    """

    model_config = SettingsConfigDict(env_prefix="SITEWATCH_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    store_url: str | None = None
    model: Path | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    detect_max_pixels: int = Field(default=40_000 * 40_000, gt=0)

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home / 'sitewatch.db'}"
