"""``sitewatch sites``: list, show, add and import watched sites."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
from rich.table import Table
from shapely.geometry import box, shape

from sitewatch.cli.console import out_console
from sitewatch.cli.options import json_option
from sitewatch.errors import SiteError
from sitewatch.sites import KINDS, Site, add_site, get_site, import_sites, list_sites, sites_to_geojson
from sitewatch.sites.site import area_km2


def _summary(site: Site) -> dict:
    lon, lat = site.aoi.centroid.coords[0]
    return {
        "name": site.name,
        "title": site.title,
        "kind": site.kind,
        "country": site.country,
        "aliases": site.aliases,
        "center": [round(lat, 5), round(lon, 5)],
        "aoi_km2": round(area_km2(site.aoi), 2),
        "zones": list(site.zones),
    }


@click.group(name="sites")
def command() -> None:
    """Watched sites: the bundled watchlist and your own additions."""


@command.command(name="list")
@json_option
def list_cmd(as_json: bool) -> None:
    """List all known sites."""
    sites = list_sites()
    if as_json:
        click.echo(json.dumps([_summary(s) for s in sites], ensure_ascii=False, indent=1))
        return
    table = Table(title="Watched sites")
    for col in ("name", "title", "kind", "country", "centre (lat, lon)", "AOI km²", "zones"):
        table.add_column(col)
    for s in sites:
        d = _summary(s)
        table.add_row(
            d["name"],
            d["title"],
            d["kind"],
            d["country"],
            f"{d['center'][0]:.4f}, {d['center'][1]:.4f}",
            f"{d['aoi_km2']:.1f}",
            ", ".join(d["zones"]) or "-",
        )
    out_console.print(table)


@command.command(name="show")
@click.argument("name")
@json_option
@click.option("--geojson", "as_geojson", is_flag=True, help="Print the site as a GeoJSON FeatureCollection.")
def show_cmd(name: str, as_json: bool, as_geojson: bool) -> None:
    """Show one site (by name, title or alias)."""
    site = get_site(name)
    if as_geojson:
        click.echo(json.dumps(site.to_geojson(), ensure_ascii=False, indent=1))
        return
    if as_json:
        d = _summary(site) | {
            "priors": site.priors,
            "notes": site.notes,
            "sources": site.sources,
            "zones": {z: round(area_km2(p), 4) for z, p in site.zones.items()},
        }
        click.echo(json.dumps(d, ensure_ascii=False, indent=1))
        return
    d = _summary(site)
    table = Table(title=f"{site.title} ({site.name})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("kind", site.kind)
    table.add_row("country", site.country)
    table.add_row("aliases", ", ".join(site.aliases) or "-")
    table.add_row("centre", f"{d['center'][0]:.5f} N, {d['center'][1]:.5f} E")
    table.add_row("AOI", f"{d['aoi_km2']:.2f} km²")
    for z, poly in site.zones.items():
        table.add_row(f"zone {z}", f"{area_km2(poly):.3f} km²")
    if site.priors.get("operators"):
        table.add_row("operators", ", ".join(site.priors["operators"]))
    if site.priors.get("types"):
        top = sorted(site.priors["types"].items(), key=lambda kv: -kv[1])
        table.add_row("expected types", ", ".join(f"{k} ({v:g})" for k, v in top))
    table.add_row("notes", site.notes or "-")
    table.add_row("sources", "\n".join(site.sources) or "-")
    out_console.print(table)


def _read_polygon(path: Path, what: str):  # noqa: ANN202 - shapely geometry
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SiteError(f"{path}: file not found") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SiteError(f"{path}: not readable GeoJSON ({e})") from e
    except RecursionError as e:
        raise SiteError(f"{path}: not readable GeoJSON (nested too deeply)") from e
    if not isinstance(obj, dict):
        raise SiteError(f"{path}: not a GeoJSON object")
    if obj.get("type") == "FeatureCollection":
        feats = obj.get("features") or []
        if len(feats) != 1:
            raise SiteError(f"{path}: {what} file must hold exactly one polygon feature, found {len(feats)}")
        obj = feats[0]
    geom = obj.get("geometry", obj) if obj.get("type") == "Feature" else obj
    try:
        return shape(geom)
    except Exception as e:  # noqa: BLE001 - shapely raises several kinds on bad GeoJSON
        raise SiteError(f"{path}: no valid {what} geometry ({e})") from e


def _parse_bbox(text: str):  # noqa: ANN202
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError as err:
        raise SiteError(f"--bbox {text!r}: expected W,S,E,N in degrees") from err
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise SiteError(f"--bbox {text!r}: expected finite numbers of degrees")
    if w > e and e >= -180 and w <= 180:
        raise SiteError(
            f"--bbox {text!r}: W > E crosses the 180° meridian, which is not supported (add the parts east "
            "and west of it as two sites)"
        )
    if not (w < e and s < n):
        raise SiteError(f"--bbox {text!r}: expected W < E and S < N")
    return box(w, s, e, n)


@command.command(name="add")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Kind of site.")
@click.option("--aoi", "aoi_file", type=click.Path(path_type=Path), help="AOI polygon, GeoJSON file (WGS84).")
@click.option("--bbox", "bbox_text", help="AOI as W,S,E,N in degrees (instead of --aoi).")
@click.option(
    "--zone", "zones", multiple=True, metavar="NAME=FILE", help="A named zone polygon (GeoJSON); repeatable."
)
@click.option("--title", help="Display name (default: NAME).")
@click.option("--country", default="", help="ISO 3166-1 alpha-2 country code.")
@click.option("--alias", "aliases", multiple=True, help="Alternative name; repeatable.")
@click.option("--operator", "operators", multiple=True, help="Expected operator (country code); repeatable.")
@click.option("--note", default="", help="Free-text note.")
@click.option("--source", "sources", multiple=True, help="Public reference; repeatable.")
@click.option("--replace", is_flag=True, help="Overwrite a site of the same name.")
@json_option
def add_cmd(
    name: str,
    kind: str,
    aoi_file: Path | None,
    bbox_text: str | None,
    zones: tuple[str, ...],
    title: str | None,
    country: str,
    aliases: tuple[str, ...],
    operators: tuple[str, ...],
    note: str,
    sources: tuple[str, ...],
    replace: bool,
    as_json: bool,
) -> None:
    """Add a site to your watchlist ($SITEWATCH_HOME/sites.geojson)."""
    if (aoi_file is None) == (bbox_text is None):
        raise click.UsageError("give exactly one of --aoi FILE or --bbox W,S,E,N")
    aoi = _read_polygon(aoi_file, "AOI") if aoi_file is not None else _parse_bbox(bbox_text or "")
    zone_polys = {}
    for spec in zones:
        zname, sep, zfile = spec.partition("=")
        if not sep or not zname or not zfile:
            raise click.UsageError(f"--zone {spec!r}: expected NAME=FILE")
        zone_polys[zname] = _read_polygon(Path(zfile), f"zone {zname!r}")
    site = Site(
        name=name,
        title=title or name,
        kind=kind,
        country=country.upper(),
        aoi=aoi,
        aliases=list(aliases),
        zones=zone_polys,
        priors={"operators": list(operators)} if operators else {},
        notes=note,
        sources=list(sources),
    )
    add_site(site, replace=replace)
    if as_json:
        click.echo(json.dumps(_summary(site), ensure_ascii=False))
    else:
        out_console.print(
            f"added site [bold]{site.name}[/bold] ({area_km2(site.aoi):.2f} km², {len(site.zones)} zones)"
        )


@command.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--replace", is_flag=True, help="Overwrite sites of the same name.")
@json_option
def import_cmd(path: Path, replace: bool, as_json: bool) -> None:
    """Import sites from a GeoJSON file (features with site/role/kind properties)."""
    sites = import_sites(path, replace=replace)
    if as_json:
        click.echo(json.dumps([_summary(s) for s in sites], ensure_ascii=False))
    else:
        out_console.print(f"imported {len(sites)} site(s): {', '.join(s.name for s in sites)}")


@command.command(name="export")
@click.argument("names", nargs=-1)
def export_cmd(names: tuple[str, ...]) -> None:
    """Print sites (default: all) as one GeoJSON FeatureCollection."""
    sites = [get_site(n) for n in names] if names else list_sites()
    click.echo(json.dumps(sites_to_geojson(sites), ensure_ascii=False, indent=1))
