"""The watch configuration (YAML): sites and their sources and alert rules, channels, retries.

See docs/watch.md for the format with examples. Times of day are local to ``quiet_hours.tz``;
durations are seconds; limits are the STAC units (cloud cover percent, off-nadir degrees).
"""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sitewatch.errors import SitewatchError


class WatchConfigError(SitewatchError, ValueError):
    """The watch configuration is missing or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ItemLimits(_Model):
    """Item filters shared by STAC sources: items outside them are recorded as skipped."""

    max_cloud_pct: float | None = Field(None, ge=0, le=100, description="largest eo:cloud_cover, percent")
    max_off_nadir_deg: float | None = Field(None, ge=0, le=90, description="largest view:off_nadir, degrees")
    asset: str | None = Field(None, description="asset key to read (default: the visual asset)")


class FolderSource(_Model):
    """New scene files in a folder; a sidecar ``<stem>.json`` STAC item, when present, is opened instead."""

    type: Literal["folder"]
    path: Path
    name: str | None = None
    pattern: str = "*.tif"
    settle_s: float = Field(
        10.0, ge=0, description="files modified less than this many seconds ago wait (still being written)"
    )

    @property
    def key(self) -> str:
        return self.name or f"folder:{self.path.expanduser().resolve()}"


class StacApiSource(ItemLimits):
    """A STAC API: item search over the site's AOI, in the chosen collections, after the last item seen."""

    type: Literal["stac-api"]
    url: str
    name: str | None = None
    collections: list[str] | None = None
    lookback_days: float = Field(
        1.0, ge=0, description="search from this long before the latest item seen (late arrivals)"
    )
    max_items: int = Field(100, ge=1, le=10_000, description="most items taken from one search")
    timeout_s: float = Field(30.0, gt=0)

    @property
    def key(self) -> str:
        cols = ",".join(self.collections or [])
        return self.name or f"stac-api:{self.url}" + (f"[{cols}]" if cols else "")


class StacCatalogSource(ItemLimits):
    """A static STAC catalog (local file or http URL), walked for items over the site's AOI."""

    type: Literal["stac-catalog"]
    url: str
    name: str | None = None

    @property
    def key(self) -> str:
        return self.name or f"stac-catalog:{self.url}"


Source = Annotated[FolderSource | StacApiSource | StacCatalogSource, Field(discriminator="type")]


class QuietHours(_Model):
    """Hours when push channels (webhook, e-mail) hold alerts until the end; log and Atom feed go on."""

    start: time
    end: time
    tz: str = "UTC"

    @field_validator("tz")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v

    def end_of(self, now: datetime) -> datetime | None:
        """When the quiet hours holding ``now`` (aware) end, or None when ``now`` is outside them."""
        local = now.astimezone(ZoneInfo(self.tz))
        t = local.timetz().replace(tzinfo=None)
        if self.start <= self.end:
            inside = self.start <= t < self.end
        else:  # spans midnight, e.g. 22:00-06:00
            inside = t >= self.start or t < self.end
        if not inside:
            return None
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(now.tzinfo)


class Rules(_Model):
    """What raises an alert for a site."""

    indicators: list[str] | None = Field(None, description="indicator names to alert on (default: all)")
    min_strength: float = Field(
        0.0, ge=0, le=1, description="a firing indicator weaker than this raises no alert"
    )
    cleared: bool = Field(True, description="alert when an indicator stops firing")
    repeat: bool = Field(False, description="alert on every pass an indicator fires, not only when it starts")
    hypotheses: bool = Field(True, description="alert when a hypothesis' estimative term changes")
    min_probability_change: float = Field(
        0.05, ge=0, le=1,
        description="a term change with a smaller move in probability (a hypothesis sitting on a term "
                    "boundary) raises no alert")  # fmt: skip
    channels: list[str] | None = Field(None, description="channel names (default: all)")
    quiet_hours: QuietHours | None = None


class SiteWatch(_Model):
    """One watched site: its sources and alert rules."""

    site: str
    sources: list[Source] = Field(min_length=1)
    rules: Rules = Rules()
    min_coverage: float = Field(
        0.01, gt=0, le=1, description="smallest fraction of the AOI a scene must cover (as `sitewatch scan`)"
    )


class LogChannel(_Model):
    type: Literal["log"]
    name: str = "log"


class AtomChannel(_Model):
    type: Literal["atom"]
    name: str = "atom"
    path: Path
    entries: int = Field(200, ge=1, description="newest alerts kept in the feed")


class WebhookChannel(_Model):
    type: Literal["webhook"]
    name: str = "webhook"
    url: str
    secret_env: str | None = Field(None, description="environment variable holding the HMAC-SHA256 key")
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="immediate retries (0.5 s, 1 s, ...) before the delivery is left for a later cycle",
    )

    def secret(self) -> bytes | None:
        if self.secret_env is None:
            return None
        value = os.environ.get(self.secret_env)
        if not value:
            raise WatchConfigError(
                f"channel {self.name!r}: environment variable {self.secret_env} (webhook secret) is not set"
            )
        return value.encode()


class EmailChannel(_Model):
    type: Literal["email"]
    name: str = "email"
    host: str
    port: int = 25
    sender: str
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(20.0, gt=0)


Channel = Annotated[LogChannel | AtomChannel | WebhookChannel | EmailChannel, Field(discriminator="type")]


class Retry(_Model):
    """Back-off of failing items and deliveries: ``first_s``, doubling up to ``max_s``; ``attempts`` in
    all."""

    first_s: float = Field(60.0, ge=0)
    max_s: float = Field(3600.0, ge=0)
    attempts: int = Field(8, ge=1)

    def delay_s(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure (1, 2, ...)."""
        return min(self.max_s, self.first_s * 2 ** max(0, attempts - 1))


def _default_channels() -> list[Channel]:
    return [LogChannel(type="log")]


class WatchConfig(_Model):
    """The whole watch configuration."""

    sites: list[SiteWatch] = Field(min_length=1)
    channels: list[Channel] = Field(default_factory=_default_channels)
    retry: Retry = Retry()
    model: str | None = Field(
        None, description="detector model name or .onnx path (default: the bundled model)"
    )
    reports: Path | None = Field(
        None, description="folder for the HTML report written with each alerting pass"
    )
    chips: int = Field(
        6,
        ge=0,
        le=50,
        description="with reports: image chips of at most this many arrived and departed objects",
    )
    read_pixels: bool = Field(
        True, description="compare passes on their pixels too (registration, pixel change)"
    )

    @model_validator(mode="after")
    def _names(self) -> WatchConfig:
        names = [c.name for c in self.channels]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(
                f"duplicate channel name(s) {', '.join(sorted(dup))}: give each channel its own 'name'"
            )
        for s in self.sites:
            unknown = set(s.rules.channels or ()) - set(names)
            if unknown:
                raise ValueError(
                    f"site {s.site!r}: unknown channel(s) {', '.join(sorted(unknown))}; channels: "
                    f"{', '.join(names)}"
                )
        return self


def load_config(path: str | Path) -> WatchConfig:
    """Read and validate a watch configuration file.

    Raises:
        WatchConfigError: missing or unreadable file, bad YAML, or an invalid field (named with its place).
    """
    p = Path(path).expanduser()
    try:
        data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise WatchConfigError(f"{p}: watch configuration not found (see docs/watch.md)") from e
    except (OSError, yaml.YAMLError) as e:
        raise WatchConfigError(f"{p}: not a readable YAML file ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise WatchConfigError(f"{p}: expected a mapping with 'sites' (see docs/watch.md)")
    try:
        return WatchConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "top level"
        raise WatchConfigError(f"{p}: {where}: {err['msg']}") from e
