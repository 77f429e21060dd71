"""Shared click options."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
store_option = click.option(
    "--store",
    "store_url",
    envvar="SITEWATCH_STORE_URL",
    default=None,
    help="Store URL (default: embedded SQLite under $SITEWATCH_HOME or ~/.sitewatch; postgresql://... for PostGIS).",
)
gsd_option = click.option("--gsd", type=click.FloatRange(min=0.001, min_open=False), default=None, help="Ground sample distance, metres per pixel.")
