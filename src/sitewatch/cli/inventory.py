"""``sitewatch inventory``: counts per category (or type, or role) per pass of a site, with changes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from rich.table import Table

from sitewatch.cli.console import out_console
from sitewatch.cli.options import json_option, span_options, store_option

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan
from sitewatch.errors import SiteError


def _cell(n: int, delta: int | None) -> str:
    if not delta:
        return str(n)
    colour = "green" if delta > 0 else "red"
    return f"{n} [{colour}]({delta:+d})[/]"


def inventory_table(site: str, inv: dict) -> Table:
    """A rich table: one row per group, one column per pass (oldest → newest), cells ``n (±delta)``."""
    simulated = any(p["simulated"] for p in inv["passes"])
    title = f"{site}: {inv['by']} per pass" + (" — SIMULATED imagery" if simulated else "")
    table = Table(title=title)
    table.add_column(inv["by"])
    for p in inv["passes"]:
        when = (p["acquired"] or "date unknown")[:16].replace("T", " ")
        table.add_column(
            f"pass {p['id']}\n{when}" + ("\nSIMULATED" if p["simulated"] else ""), justify="right"
        )
    for g in inv["groups"]:
        table.add_row(g, *[_cell(p["counts"][g], p["deltas"][g]) for p in inv["passes"]])
    table.add_row("[bold]total", *[f"[bold]{sum(p['counts'].values())}" for p in inv["passes"]])
    return table


def load_passes(store, site: str) -> list:  # noqa: ANN001 - a Store
    """The passes of ``site``; a one-line error naming the store when there are none."""
    passes = store.list_passes(site)
    if not passes:
        known = ", ".join(store.sites()) or "none"
        raise SiteError(
            f"no passes of site '{site}' in store {store.url} (sites with passes: {known}); run: sitewatch "
            f"scan SCENE --site {site}"
        )
    return passes


@click.command()
@click.argument("site")
@click.option("--by", type=click.Choice(["category", "type", "role"]), default="category", show_default=True)
@span_options("to count (default: all)")
@json_option
@store_option
def command(site: str, span: PassSpan, by: str, as_json: bool, store_url: str | None) -> None:
    """Counts per category (or identified type, or role) in each pass of SITE, oldest first, with changes.

    Example: sitewatch inventory hmeimim --by type
    """
    from sitewatch.pipeline import inventory
    from sitewatch.store import open_store

    with open_store(store_url) as store:
        inv = inventory(span.select(load_passes(store, site), site), by)
    if as_json:
        click.echo(json.dumps({"site": site, **inv}, indent=1))
    else:
        out_console.print(inventory_table(site, inv))
