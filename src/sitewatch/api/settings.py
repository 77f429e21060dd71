"""Settings of the web API, read from the environment (``SITEWATCH_API_*``) and passed down explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sitewatch.settings import FileSettings, Settings


class ApiSettings(FileSettings):
    """Settings of ``sitewatch serve``.

    Attributes:
        home: sitewatch home (user watchlist, the job folder); ``$SITEWATCH_HOME`` or ``~/.sitewatch``.
        token: shared secret. Every write needs it (writes are refused while it is unset); when set,
            every read needs it too. Sent as ``Authorization: Bearer TOKEN`` (or ``?access_token=``
            for image tiles, which browsers fetch without headers). Env ``SITEWATCH_API_TOKEN``.
        cors_origins: origins allowed to call the API from other web pages; empty = CORS off.
        imagery_roots: folders whose scenes a scan job may read by path; nothing outside them is
            readable by a path given in a request. Env: a JSON list, e.g. ``'["/data/imagery"]'``.
        max_upload_mb: largest accepted scene upload, MiB.
        jobs_dir: where scan jobs and uploads are kept; default ``<home>/jobs``.
        model: detector model name or .onnx path for scan jobs (default: the bundled model).
        max_page: most features one detections page may hold.
        response_cache_mb: most MiB of encoded per-pass responses (detections pages, pass summaries,
            previews) the server keeps to answer again without the store; 0 keeps none.
        warm_reports: build the report data (assessment, comparisons) of every site with passes in the
            background when the server starts, so the first dashboard visit does not wait for it.
    """

    config_table: ClassVar[str | None] = "api"
    model_config = SettingsConfigDict(env_prefix="SITEWATCH_API_", extra="ignore")

    home: Path = Field(default_factory=lambda: Settings().home)
    token: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    imagery_roots: list[Path] = Field(default_factory=list)
    max_upload_mb: float = Field(default=512.0, gt=0)
    jobs_dir: Path | None = None
    model: str | None = None
    max_page: int = Field(default=1000, ge=1)
    response_cache_mb: float = Field(default=64.0, ge=0)
    warm_reports: bool = False

    def resolved_jobs_dir(self) -> Path:
        return self.jobs_dir or (self.home / "jobs")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
