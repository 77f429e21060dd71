"""``sitewatch compare SITE``: what changed between two passes of a site."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from sitewatch.cli.options import json_option, output_option, overwrite_option, store_option
from sitewatch.errors import CompareError, SiteError
from sitewatch.types import Pass


def load_site(name: str) -> Any:
    """The watchlist site, or None when the name is not on it (passes may still be stored under it)."""
    try:
        from sitewatch.sites import get_site
    except ImportError:
        return None
    try:
        return get_site(name)
    except SiteError:
        return None


def _as_date(text: str) -> date | None:
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None


def pick_pass(passes: list[Pass], ref: str, site: str, which: str) -> Pass:
    """A pass by id, or the last pass acquired on or before a date (YYYY-MM-DD).

    Raises:
        CompareError: no pass matches, naming what was asked and what exists.
    """
    if ref.isdigit():
        for p in passes:
            if p.id == int(ref):
                return p
        raise CompareError(f"no pass {ref} of site {site!r}; its passes: {', '.join(str(p.id) for p in passes)}")
    day = _as_date(ref)
    if day is None:
        raise CompareError(f"--{which} {ref!r}: expected a pass id or a date YYYY-MM-DD")
    dated = [p for p in passes if p.acquired is not None and p.acquired.astimezone(UTC).date() <= day]
    if not dated:
        raise CompareError(f"no pass of site {site!r} acquired on or before {day}")
    return dated[-1]


def choose_pair(passes: list[Pass], site: str, ref_from: str | None, ref_to: str | None) -> tuple[Pass, Pass]:
    """The passes to compare: defaults are the last two."""
    if len(passes) < 2:
        raise CompareError(f"site {site!r} has {len(passes)} stored pass(es); comparing needs two (scan another image)")
    b = pick_pass(passes, ref_to, site, "to") if ref_to else passes[-1]
    if ref_from:
        a = pick_pass(passes, ref_from, site, "from")
    else:
        earlier = [p for p in passes if p is not b and passes.index(p) < passes.index(b)]
        if not earlier:
            raise CompareError(f"no pass of site {site!r} before pass {b.id}")
        a = earlier[-1]
    if a.id == b.id:
        raise CompareError(f"--from and --to name the same pass ({a.id})")
    if passes.index(a) > passes.index(b):
        def when(p: Pass) -> str:
            return p.acquired.date().isoformat() if p.acquired else "date unknown"

        raise CompareError(f"--from pass {a.id} ({when(a)}) is later than --to pass {b.id} ({when(b)}): "
                           "compare runs forwards in time; swap them")  # fmt: skip
    return a, b


@click.command("compare")
@click.argument("site")
@click.option("--from", "ref_from", default=None, metavar="PASS|DATE", help="Earlier pass: id or date (default: the one before --to).")
@click.option("--to", "ref_to", default=None, metavar="PASS|DATE", help="Later pass: id or date (default: the latest).")
@output_option("Write the change map to this GeoTIFF (1 changed, 0 unchanged, 255 not compared).", old=("--map",), type=click.Path(dir_okay=False, path_type=Path), default=None)
@overwrite_option
@click.option("--no-pixels", is_flag=True, help="Compare detections only (do not read the scenes).")
@json_option
@store_option
def command(
    site: str, ref_from: str | None, ref_to: str | None, output: Path | None, overwrite: bool, no_pixels: bool, as_json: bool, store_url: str | None
) -> None:
    """What arrived, departed, remained or moved at SITE between two passes, and how much changed."""
    from sitewatch.cli.console import out_console
    from sitewatch.compare import compare_passes, write_change_map
    from sitewatch.store import open_store

    map_path = output
    if map_path is not None:
        from sitewatch.output import check_output

        check_output(map_path, overwrite=overwrite, what="change map")  # before any work
    site_obj = load_site(site)
    name = getattr(site_obj, "name", site)
    with open_store(store_url) as store:
        passes = store.list_passes(name)
    a, b = choose_pair(passes, name, ref_from, ref_to)
    result = compare_passes(a, b, site_obj, read_pixels=not no_pixels)
    if map_path is not None:
        write_change_map(result, map_path, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    out_console.print(f"[bold]{name}[/]: pass {a.id} ({_when(a)}) → pass {b.id} ({_when(b)})")
    out_console.print(result.sentence)
    reg = result.registration
    if reg is not None:
        out_console.print(
            f"registration: {reg.method}, shift ({reg.shift_x_px:+.1f}, {reg.shift_y_px:+.1f}) px, "
            f"rotation {reg.rotation_deg:+.2f}°, quality {reg.quality:.2f}"
            + ("" if reg.local_spread_px is None else f", local misregistration ±{reg.local_spread_px:.1f} px (1σ, {reg.local_blocks} blocks)")
        )
    for cat, v in result.counts.items():
        if v["a"] or v["b"]:
            out_console.print(f"  {cat}: {v['a']} → {v['b']}  arrived {v['arrived']}, departed {v['departed']}, remained {v['remained']}, moved {v['moved']}")
    for zone, z in result.pixel_change.items():
        if z["pct_changed"] is None:
            out_console.print(f"  {zone}: not seen in both passes")
            continue
        out_console.print(f"  {zone}: {z['pct_changed']} % changed, {z['pct_explained_by_objects']} % of it inside object boxes")
    for w in result.warnings:
        out_console.print(f"[yellow]warning:[/] {w}")
    if map_path is not None:
        out_console.print(f"change map: {map_path}")


def _when(p: Pass) -> str:
    return p.acquired.date().isoformat() if p.acquired else "date unknown"
