"""``sitewatch passes``: the stored passes of a site (or the sites that have passes)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from rich.table import Table

from sitewatch.cli.console import out_console
from sitewatch.cli.options import json_option, span_options, store_option

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan


@click.command()
@click.argument("site", required=False)
@span_options("to list (default: all)")
@json_option
@store_option
def command(site: str | None, span: PassSpan, as_json: bool, store_url: str | None) -> None:
    """List the passes of SITE oldest first (without SITE: the sites that have passes).

    Example: sitewatch passes hmeimim
    """
    from sitewatch.cli.inventory import load_passes
    from sitewatch.cli.scan import coverage_text
    from sitewatch.pipeline import pass_summary
    from sitewatch.store import open_store

    if site is None and not span.is_open:
        raise click.UsageError("--from/--to select passes of one site: give SITE")
    with open_store(store_url) as store:
        if site is None:
            names = store.sites()
            counts = {n: len(store.list_passes(n)) for n in names}
        else:
            passes = span.select(load_passes(store, site), site)
    if site is None:
        if as_json:
            click.echo(json.dumps(counts, indent=1))
        else:
            for n, k in counts.items():
                out_console.print(f"{n}: {k} pass{'es' if k != 1 else ''}")
        return
    if as_json:
        click.echo(json.dumps([pass_summary(p) for p in passes], indent=1))
        return
    sim = any(p.simulated for p in passes)
    table = Table(title=f"passes of {site}" + (" — SIMULATED imagery" if sim else ""))
    table.add_column("id", no_wrap=True)
    for col in ("acquired (UTC)", "scene", "AOI cover", "GSD m", "model", "detections"):
        table.add_column(col, overflow="fold")
    for p in passes:
        table.add_row(
            f"{p.id} [bold red]SIMULATED" if p.simulated else str(p.id),
            p.acquired.strftime("%Y-%m-%d %H:%M") if p.acquired else "unknown",
            p.scene_path,
            coverage_text(p).replace(" of AOI", ""),
            f"{p.gsd_m:.2f}" if p.gsd_m else "?",
            p.model,
            str(len(p.detections)),
        )
    out_console.print(table)
