"""``sitewatch export``: detections of a site's passes as GeoJSON, GeoParquet, KML, CSV or FlatGeobuf."""

from __future__ import annotations

from pathlib import Path

import click

from sitewatch.cli.console import err_console
from sitewatch.cli.options import store_option
from sitewatch.report.exports import FORMATS


@click.command()
@click.argument("site")
@click.option("--pass", "pass_id", type=int, default=None, help="Only this pass (default: all passes of SITE).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="File to write.")
@store_option
def command(site: str, pass_id: int | None, fmt: str, output: Path, store_url: str | None) -> None:
    """Export the detections of SITE (footprints in WGS84) to a GIS file.

    Example: sitewatch export hmeimim --format geoparquet -o hmeimim.parquet
    """
    from sitewatch.cli.inventory import load_passes
    from sitewatch.errors import StoreError
    from sitewatch.report.exports import export_passes
    from sitewatch.store import open_store

    with open_store(store_url) as store:
        if pass_id is None:
            passes = load_passes(store, site)
        else:
            p = store.get_pass(pass_id)
            if p.site != site:
                raise StoreError(f"pass {pass_id} belongs to site '{p.site}', not '{site}'")
            passes = [p]
    path = export_passes(passes, site, fmt, output)
    n = sum(len(p.detections) for p in passes)
    if fmt == "kml":  # KML holds only detections with a ground position (the export logs the others)
        n -= sum(len(p.detections) for p in passes if p.crs is None or p.transform is None)
    sim = " (SIMULATED imagery)" if any(p.simulated for p in passes) else ""
    err_console.print(f"wrote {n} detections of {len(passes)} pass(es) to {path}{sim}")
