"""``sitewatch export``: detections of a site's passes as GeoJSON, GeoParquet, KML, CSV, FlatGeobuf,
GeoPackage or a STAC catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from sitewatch.cli.console import err_console
from sitewatch.cli.options import overwrite_option, span_options, store_option
from sitewatch.report.exports import FORMATS

if TYPE_CHECKING:
    from sitewatch.store.span import PassSpan


@click.command()
@click.argument("site")
@click.option(
    "--pass", "pass_id", type=int, default=None, help="Only this pass (the same as --from ID --to ID)."
)
@span_options("to export (default: all)")
@click.option(
    "--format", "fmt", type=click.Choice(sorted(FORMATS)), default=None,
    help="Export format (default: from the suffix of --output: .geojson .parquet .kml .csv .fgb .gpkg; "
         "stac writes a folder).",
)  # fmt: skip
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="File to write (a folder for --format stac).",
)
@overwrite_option
@store_option
def command(
    site: str,
    pass_id: int | None,
    span: PassSpan,
    fmt: str | None,
    output: Path,
    overwrite: bool,
    store_url: str | None,
) -> None:
    """Export the detections of SITE (footprints in WGS84) to a GIS file.

    Examples: sitewatch export hmeimim -o hmeimim.gpkg (opens in QGIS: detections, passes, AOI, zones);
    sitewatch export hmeimim --format stac -o hmeimim-stac
    """
    from sitewatch.cli.compare import load_site
    from sitewatch.cli.inventory import load_passes
    from sitewatch.errors import StoreError
    from sitewatch.report.exports import export_passes, exported_count, format_for
    from sitewatch.store import open_store

    if pass_id is not None and not span.is_open:
        raise click.UsageError("give either --pass or --from/--to, not both")
    chosen = format_for(output, fmt)  # refuse a bad suffix before opening the store
    site_obj = load_site(site)
    name = getattr(site_obj, "name", site)
    with open_store(store_url) as store:
        if pass_id is None:
            passes = span.select(load_passes(store, name), name)
        else:
            p = store.get_pass(pass_id)
            if p.site != name:
                raise StoreError(f"pass {pass_id} belongs to site '{p.site}', not '{name}'")
            passes = [p]
    path = export_passes(passes, site_obj or name, chosen.name, output, overwrite=overwrite)
    n = exported_count(passes, chosen.name)
    left = sum(len(p.detections) for p in passes) - n
    sim = " (SIMULATED imagery)" if any(p.simulated for p in passes) else ""
    note = f"; {left} pixel-space detection(s) left out (no ground position)" if left else ""
    err_console.print(
        f"wrote {n} detections of {len(passes)} pass(es) to {path}{sim}{note}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
