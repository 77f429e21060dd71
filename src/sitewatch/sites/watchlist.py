"""The watchlist: bundled sites (package data) plus the user's own in ``$SITEWATCH_HOME/sites.geojson``.

User sites may replace bundled ones of the same name. Writes are atomic (temporary file +
rename), so a failed or interrupted write leaves the previous watchlist intact.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from sitewatch.errors import SiteError
from sitewatch.settings import Settings
from sitewatch.sites.site import Site, lookup_key, sites_from_geojson, sites_to_geojson

USER_FILE = "sites.geojson"

_USER_NOTE = "sitewatch user watchlist; AOIs and zones are approximate unless stated otherwise."


def _home(home: Path | None) -> Path:
    return Path(home) if home is not None else Settings().home


@lru_cache(maxsize=1)
def _bundled_json() -> str:
    return resources.files("sitewatch.sites").joinpath("data/watchlist.geojson").read_text(encoding="utf-8")


def bundled_sites() -> list[Site]:
    """The sites shipped with sitewatch (``sitewatch/sites/data/watchlist.geojson``)."""
    return sites_from_geojson(json.loads(_bundled_json()), source="bundled watchlist")


def user_watchlist_path(home: Path | None = None) -> Path:
    """Path of the user's watchlist file (may not exist yet)."""
    return _home(home) / USER_FILE


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise SiteError(f"{path}: file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise SiteError(f"{path}: cannot read ({e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SiteError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    except RecursionError as e:
        raise SiteError(f"{path}: not valid JSON (nested too deeply)") from e


def user_sites(home: Path | None = None) -> list[Site]:
    """The user's own sites (empty when the file does not exist).

    Raises:
        SiteError: the file is unreadable or invalid.
    """
    path = user_watchlist_path(home)
    if not path.exists():
        return []
    return sites_from_geojson(_read_file(path), source=str(path))


def list_sites(home: Path | None = None) -> list[Site]:
    """All known sites: bundled ones (user replacements in their place), then user additions."""
    users = {s.name: s for s in user_sites(home)}
    out = [users.pop(s.name, s) for s in bundled_sites()]
    return out + list(users.values())


def get_site(name_or_alias: str, home: Path | None = None) -> Site:
    """Find a site by name, title or alias (case-, accent- and punctuation-insensitive).

    Raises:
        SiteError: unknown site; the message lists close matches and the known site names.
    """
    sites = list_sites(home)
    for site in sites:
        if site.name == name_or_alias:
            return site
    for site in sites:
        if site.matches(name_or_alias):
            return site
    by_key = {lookup_key(n): s.name for s in sites for n in s.names}
    close = difflib.get_close_matches(lookup_key(name_or_alias), list(by_key), n=5, cutoff=0.6)
    suggestions = list(dict.fromkeys(by_key[k] for k in close))
    hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
    raise SiteError(f"unknown site {name_or_alias!r}{hint}; known sites: {', '.join(s.name for s in sites)}")


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sites-", suffix=".geojson", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_conflicts(new: list[Site], existing: list[Site], replace: bool) -> None:
    seen: dict[str, str] = {}
    for site in new:
        if site.name in seen:
            raise SiteError(f"site {site.name!r} is given twice")
        seen[site.name] = site.name
    for site in new:
        for other in existing:
            if other.name == site.name:
                if not replace:
                    raise SiteError(f"site {site.name!r} already exists; use replace to overwrite it")
                continue
            clash = next((n for n in site.names if other.matches(n)), None)
            if clash is not None and other.name not in seen:
                raise SiteError(
                    f"site {site.name!r}: name or alias {clash!r} already refers to site {other.name!r}"
                )


def add_sites(sites: list[Site], *, replace: bool = False, home: Path | None = None) -> list[Site]:
    """Add sites to the user watchlist in one atomic write (all or none).

    Args:
        sites: the sites.
        replace: overwrite sites of the same name (bundled ones are shadowed, not edited).
        home: sitewatch home (default: settings).

    Returns:
        The sites added.

    Raises:
        SiteError: a name exists (without ``replace``) or an alias points at another site.
    """
    _check_conflicts(sites, list_sites(home), replace)
    names = {s.name for s in sites}
    kept = [s for s in user_sites(home) if s.name not in names]
    _write_atomic(user_watchlist_path(home), sites_to_geojson(kept + list(sites), note=_USER_NOTE))
    return list(sites)


def add_site(site: Site, *, replace: bool = False, home: Path | None = None) -> Site:
    """Add one site to the user watchlist (see :func:`add_sites`)."""
    add_sites([site], replace=replace, home=home)
    return site


def import_sites(path: str | Path, *, replace: bool = False, home: Path | None = None) -> list[Site]:
    """Add every site of a GeoJSON file (see :func:`~sitewatch.sites.site.sites_from_geojson`) atomically.

    Raises:
        SiteError: unreadable/invalid file or site, or a name clash (nothing is written then).
    """
    path = Path(path)
    sites = sites_from_geojson(_read_file(path), source=str(path))
    if not sites:
        raise SiteError(f"{path}: no sites found")
    return add_sites(sites, replace=replace, home=home)


def remove_site(name: str, home: Path | None = None) -> None:
    """Remove a user site (bundled sites cannot be removed; a user replacement can).

    Raises:
        SiteError: no user site of that name.
    """
    users = user_sites(home)
    kept = [s for s in users if s.name != name]
    if len(kept) == len(users):
        raise SiteError(f"no user site {name!r} (bundled sites cannot be removed)")
    _write_atomic(user_watchlist_path(home), sites_to_geojson(kept, note=_USER_NOTE))
