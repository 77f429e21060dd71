"""``sitewatch report SITE [--from PASS|DATE] [--to PASS|DATE] -o report.html|report.pdf|report.json``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from sitewatch.cli.options import overwrite_option, span_options, store_option

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan


@click.command("report")
@click.argument("site")
@span_options("to report on (default: all)")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Report file: .html (self-contained), .pdf (A4) or .json. Default: <site>-report.html. "
    "A JSON twin is always written beside it.",
)
@overwrite_option
@store_option
def command(site: str, span: PassSpan, output: Path | None, overwrite: bool, store_url: str | None) -> None:
    """Write the analyst's report of SITE: key judgements with evidence, inventory, chips, map, ACH,
    claims."""
    from sitewatch.cli.console import err_console, out_console
    from sitewatch.report import write_report
    from sitewatch.report.render import check_output_path
    from sitewatch.store import open_store

    out = output or Path(f"{site}-report.html")
    check_output_path(out, overwrite=overwrite)  # fail before opening the store or doing any work
    with err_console.status(f"writing report of {site}"), open_store(store_url) as store:
        path = write_report(store, site, out, span=span, overwrite=overwrite)
    twin = path.with_suffix(".json")
    out_console.print(f"report: {path}" + (f"\njson:   {twin}" if twin != path else ""))
