"""Settings: keyword arguments, then the environment (``SITEWATCH_*``), then the config file.

The optional config file is ``$SITEWATCH_CONFIG``, else ``$XDG_CONFIG_HOME/sitewatch/config.toml``
(``~/.config/sitewatch/config.toml``). Its top level holds :class:`Settings`; the tables ``[api]``,
``[identify]`` and ``[compare]`` hold the settings of ``sitewatch serve``, of identification and of
comparison (the same names as their ``SITEWATCH_API_*``, ``SITEWATCH_IDENTIFY_*`` and
``SITEWATCH_COMPARE_*`` variables, lower case, without the prefix)::

    store_url = "postgresql://analyst@db/sitewatch"
    model = "/models/sitewatch-det.onnx"
    score_threshold = 0.3

    [api]
    imagery_roots = ["/data/imagery"]

    [compare]
    remain_tolerance_min_m = 4.0

An environment variable wins over the file. A file that is not valid TOML, or a value out of
range, stops every command with one line naming the file; an unknown key is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from sitewatch.errors import SitewatchError

log = logging.getLogger(__name__)

#: Tables of the config file and the environment prefix of the settings each holds (None: top level).
CONFIG_TABLES: dict[str | None, str] = {
    None: "SITEWATCH_",
    "api": "SITEWATCH_API_",
    "identify": "SITEWATCH_IDENTIFY_",
    "compare": "SITEWATCH_COMPARE_",
}


class ConfigError(SitewatchError, ValueError):
    """The config file cannot be read or parsed."""


def config_path() -> Path:
    """The config file: ``$SITEWATCH_CONFIG``, else ``$XDG_CONFIG_HOME/sitewatch/config.toml``."""
    if explicit := os.environ.get("SITEWATCH_CONFIG"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sitewatch" / "config.toml"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The parsed config file ({} when there is none).

    Raises:
        ConfigError: the file exists but cannot be read or is not valid TOML; ``$SITEWATCH_CONFIG``
            names a file that does not exist.
    """
    path = path or config_path()
    try:
        stat = path.stat()
    except FileNotFoundError:
        if os.environ.get("SITEWATCH_CONFIG"):
            raise ConfigError(f"{path}: config file not found (named by SITEWATCH_CONFIG)") from None
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    return _parse(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _parse(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: cannot read the config file: {getattr(e, 'strerror', None) or e}"
        ) from None
    _warn_unknown(path, data)
    return data


def _warn_unknown(path: str, data: dict[str, Any]) -> None:
    from sitewatch.compare.settings import CompareSettings
    from sitewatch.identify.settings import IdentifySettings

    known: dict[str | None, set[str]] = {
        None: set(Settings.model_fields), "identify": set(IdentifySettings.model_fields),
        "compare": set(CompareSettings.model_fields),
    }  # fmt: skip
    try:  # the API package needs the [serve] extra; without it [api] keys are not checked
        from sitewatch.api.settings import ApiSettings

        known["api"] = set(ApiSettings.model_fields)
    except ImportError:
        known["api"] = set()
        data = {**data, "api": {}} if isinstance(data.get("api"), dict) else data
    for key, value in data.items():
        if key in known and key is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table")
            for sub in value:
                if sub not in known[key]:
                    log.warning("%s: unknown setting %r in [%s] (ignored)", path, sub, key)
        elif key not in known[None]:
            log.warning("%s: unknown setting %r (ignored)", path, key)


def setting_origin(settings_title: str, name: str) -> str:
    """Where a setting's bad value came from, for an error line: its variable, or file and key."""
    table = {
        "Settings": None,
        "ApiSettings": "api",
        "IdentifySettings": "identify",
        "CompareSettings": "compare",
    }.get(settings_title)
    var = CONFIG_TABLES.get(table, "SITEWATCH_") + name.upper()
    if var in os.environ:
        return var
    try:
        data = read_config()
    except ConfigError:
        data = {}
    section = data if table is None else data.get(table, {})
    if isinstance(section, dict) and name in section:
        return f"{config_path()}: {name if table is None else f'[{table}] {name}'}"
    return var


class FileSettings(BaseSettings):
    """Settings read from keyword arguments, then ``<env_prefix>*`` variables, then the config file's
    ``config_table``."""

    config_table: ClassVar[str | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        data = read_config()
        table = data if cls.config_table is None else data.get(cls.config_table, {})
        values = {k: v for k, v in table.items() if k in settings_cls.model_fields}
        return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=values))


def default_home() -> Path:
    """Where the embedded store and default outputs live: ``$SITEWATCH_HOME`` or ``~/.sitewatch``."""
    return Path.home() / ".sitewatch"


class Settings(FileSettings):
    """sitewatch settings.

    Attributes:
        home: folder for the embedded store and caches.
        store_url: SQLAlchemy URL of the store; default ``sqlite:///<home>/sitewatch.db``.
            ``postgresql://...`` selects PostgreSQL/PostGIS.
        model: path of an ONNX detector; default the bundled model.
        score_threshold: minimum detector score kept in every category (``SITEWATCH_SCORE_THRESHOLD``;
            read by :class:`~sitewatch.detect.onnx.OnnxDetector`, so by detect, scan and evaluate),
            or None for the model's own per-category thresholds.
        detect_thorough: run every detection (detect, scan, watch, the web API) in the thorough
            mode (``SITEWATCH_DETECT_THOROUGH``; :data:`~sitewatch.detect.sliced.THOROUGH`): the
            half-scale and mirrored passes, about 2.5 times the model time (docs/detect.md).
        detect_max_pixels: largest image, pixels, that ``sitewatch detect`` runs on whole
            (``SITEWATCH_DETECT_MAX_PIXELS``; default 40 000 x 40 000); larger images are scanned by AOI.
    """

    model_config = SettingsConfigDict(env_prefix="SITEWATCH_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    store_url: str | None = None
    model: Path | None = None
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    detect_thorough: bool = False
    detect_max_pixels: int = Field(default=40_000 * 40_000, gt=0)

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.home / 'sitewatch.db'}"
