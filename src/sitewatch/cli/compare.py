"""``sitewatch compare SITE``: what changed between two passes of a site."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sitewatch.cli.options import json_option, output_option, overwrite_option, span_options, store_option
from sitewatch.errors import CompareError, SiteError
from sitewatch.types import Pass

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan


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


def choose_pair(passes: list[Pass], site: str, span: PassSpan) -> tuple[Pass, Pass]:
    """The passes to compare: the first and the last of the span (by default the latest two passes).

    With only ``--to`` the later pass is the last of the span and the earlier the pass before it.

    Raises:
        CompareError: fewer than two passes to compare.
    """
    if len(passes) < 2:
        raise CompareError(
            f"site {site!r} has {len(passes)} stored pass(es); comparing needs two (scan another image)"
        )
    chosen = span.select(passes, site)
    if span.start is None:
        chosen = chosen[-2:]
    if len(chosen) < 2:
        p = chosen[0]
        raise CompareError(
            f"only pass {p.id} ({_when(p)}) of site {site!r} lies {span.describe()}; comparing needs two: "
            "widen the span"
        )
    return chosen[0], chosen[-1]


@click.command("compare")
@click.argument("site")
@span_options("to compare (its first and last; default: the latest two)")
@output_option(
    "Write the change map to this GeoTIFF (1 changed, 0 unchanged, 255 not compared).",
    old=("--map",),
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
)
@overwrite_option
@click.option("--no-pixels", is_flag=True, help="Compare detections only (do not read the scenes).")
@json_option
@store_option
def command(
    site: str,
    span: PassSpan,
    output: Path | None,
    overwrite: bool,
    no_pixels: bool,
    as_json: bool,
    store_url: str | None,
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
    a, b = choose_pair(passes, name, span)
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
            + (
                ""
                if reg.local_spread_px is None
                else f", local misregistration ±{reg.local_spread_px:.1f} px (1σ, {reg.local_blocks} blocks)"
            )
        )
    for cat, v in result.counts.items():
        if v["a"] or v["b"]:
            out_console.print(
                f"  {cat}: {v['a']} → {v['b']}  arrived {v['arrived']}, departed {v['departed']}, remained "
                f"{v['remained']}, moved {v['moved']}"
            )
    for zone, z in result.pixel_change.items():
        if z["pct_changed"] is None:
            out_console.print(f"  {zone}: not seen in both passes")
            continue
        out_console.print(
            f"  {zone}: {z['pct_changed']} % changed, {z['pct_explained_by_objects']} % of it inside "
            "object boxes"
        )
    for w in result.warnings:
        out_console.print(f"[yellow]warning:[/] {w}")
    if map_path is not None:
        out_console.print(f"change map: {map_path}")


def _when(p: Pass) -> str:
    return p.acquired.date().isoformat() if p.acquired else "date unknown"
