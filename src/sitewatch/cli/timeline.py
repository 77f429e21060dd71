"""``sitewatch timeline SITE``: counts per pass and the changes between consecutive passes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from sitewatch.cli.compare import load_site
from sitewatch.cli.options import json_option, span_options, store_option

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan
from sitewatch.errors import CompareError


@click.command("timeline")
@click.argument("site")
@click.option("--pixels", is_flag=True, help="Also read the scenes (registration by image; slower).")
@span_options("to show (default: all)")
@json_option
@store_option
def command(site: str, span: PassSpan, pixels: bool, as_json: bool, store_url: str | None) -> None:
    """The history of SITE pass by pass: counts and what changed since the previous pass."""
    from rich.table import Table

    from sitewatch.cli.console import out_console
    from sitewatch.compare import timeline
    from sitewatch.store import open_store

    site_obj = load_site(site)
    name = getattr(site_obj, "name", site)
    with open_store(store_url) as store:
        passes = store.list_passes(name)
    if not passes:
        raise CompareError(f"no stored passes of site {name!r} (scan an image first)")
    passes = span.select(passes, name)
    entries = timeline(passes, site_obj, read_pixels=pixels)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    table = Table(title=f"{name}: {len(entries)} pass(es)")
    for col in ("pass", "acquired", "counts", "since previous"):
        table.add_column(col)
    for e in entries:
        counts = ", ".join(f"{k} {v}" for k, v in e["counts"].items()) or "none"
        since = e["sentence"] or (f"not compared: {e['not_compared']}" if e["not_compared"] else "—")
        table.add_row(str(e["pass_id"]), (e["acquired"] or "unknown")[:10], counts, since)
    out_console.print(table)
