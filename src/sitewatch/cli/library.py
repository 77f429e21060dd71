"""``sitewatch library``: the reference library of equipment dimensions, with sources."""

from __future__ import annotations

import json

import click
from rich.table import Table

from sitewatch.cli.console import out_console
from sitewatch.cli.options import json_option
from sitewatch.errors import LibraryError
from sitewatch.types import CATEGORIES


def _dims(t) -> str:  # noqa: ANN001 - EquipmentType, imported lazily
    if t.swing_wing:
        return f"{t.length_m:g} x {t.span_spread_m:g}/{t.span_swept_m:g}"
    return f"{t.length_m:g} x {t.width_m:g}"


@click.group("library")
def command() -> None:
    """Reference dimensions of aircraft, helicopters, ships and vehicles (each with its source)."""


@command.command("list")
@click.option("--category", type=click.Choice(CATEGORIES), default=None, help="Only this category.")
@click.option("--role", default=None, help='Only this role group, e.g. "heavy transport".')
@json_option
def list_cmd(category: str | None, role: str | None, as_json: bool) -> None:
    """List library types: dimensions (length x width/span, metres), role, operators and source."""
    from sitewatch.identify.library import load_library

    lib = load_library()
    if role is not None and role.lower() not in {r.lower() for r in lib.roles}:
        raise LibraryError(f"unknown role group {role!r}; known: {', '.join(sorted(lib.roles))}")
    types = lib.select(category=category, role=role)
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in types], indent=2))
        return
    table = Table(title=f"Reference library ({len(types)} types)", show_lines=False)
    for col in ("id", "name", "category", "role", "L x W m", "operators", "source"):
        table.add_column(col, overflow="fold")
    for t in types:
        table.add_row(t.id, t.name, t.category, t.role, _dims(t), " ".join(t.operators), t.source)
    out_console.print(table)


@command.command("show")
@click.argument("type_name")
@json_option
def show_cmd(type_name: str, as_json: bool) -> None:
    """Show one type (by id, name or alias, e.g. "Condor") with its dimensions and source."""
    from sitewatch.identify.library import load_library

    t = load_library().get(type_name)
    if as_json:
        click.echo(json.dumps(t.to_dict(), indent=2))
        return
    table = Table(title=t.name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in t.to_dict().items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    out_console.print(table)
