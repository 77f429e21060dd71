"""``sitewatch scan``: detect and identify objects on a site's AOI in scenes and store them as passes."""

from __future__ import annotations

import json
import warnings

import click

from sitewatch.cli.console import err_console, out_console, progress, task_progress
from sitewatch.cli.options import force_option, gsd_option, json_option, model_option, store_option
from sitewatch.errors import SitewatchWarning


def _center(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lat, lon = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected LAT,LON in degrees, e.g. 35.40,35.95", param_hint="--center"
        ) from None
    return lat, lon


def coverage_text(p) -> str:  # noqa: ANN001 - a Pass
    """The AOI share inside the image and, when less, the share valid pixels observed."""
    cov = "pixel space" if p.aoi_coverage is None else f"{100 * p.aoi_coverage:.0f}% of AOI"
    seen = p.observed_coverage
    if seen is not None and (p.aoi_coverage is None or seen < p.aoi_coverage - 0.005):
        cov += f", {100 * seen:.0f}% observed" if seen > 0 else ", NOT OBSERVED (no valid pixels)"
    return cov


def describe(p) -> str:  # noqa: ANN001 - a Pass
    """One line about a pass for people."""
    cov = coverage_text(p)
    when = p.acquired.strftime("%Y-%m-%d %H:%M") if p.acquired else "date unknown"
    counts = ", ".join(f"{n} {c}" for c, n in p.counts().items() if n) or "nothing detected"
    sim = "[bold red]SIMULATED[/] " if p.simulated else ""
    return f"{sim}pass {p.id}: {p.scene_path} ({when}, {cov}, GSD {p.gsd_m or 0:.2f} m): {counts}"


@click.command()
@click.argument("scenes", nargs=-1, required=True)
@click.option(
    "--site", "site_name", required=True, help="Watched site name or alias (see `sitewatch sites`)."
)
@click.option("--acquired", default=None, help="Acquisition time (ISO 8601), overriding the file's.")
@gsd_option
@force_option
@click.option(
    "--center", default=None, help="LAT,LON of the image centre, to place a screenshot on the ground."
)
@click.option(
    "--rotation",
    type=float,
    default=0.0,
    show_default=True,
    help="With --center: bearing of image-up, degrees clockwise from north.",
)
@model_option
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Scan on a local Dask cluster of N worker processes.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Scan on a running Dask cluster (scheduler address, e.g. tcp://10.0.0.5:8786).",
)
@json_option
@store_option
def command(
    scenes, site_name, acquired, gsd, force, center, rotation, model, workers, scheduler, as_json, store_url
) -> None:  # noqa: ANN001
    """Scan SCENE files (GeoTIFF/COG, JPEG/PNG, STAC item) of a site and store one pass per scene.

    Only the part of each scene that holds the site's AOI is read. Rescanning a scene replaces its pass.
    With --workers or --scheduler the scenes are scanned on a Dask cluster; a scene that fails is
    reported and skipped, the others are stored, and the exit status is non-zero (see docs/scale.md).

    Example: sitewatch scan pleiades_2024-03-01.tif --site hmeimim
    """
    from sitewatch.imagery.reader import check_gsd

    check_gsd(gsd, "--gsd", force=force)  # before any work
    if workers is not None or scheduler is not None:
        _scan_on_cluster(
            scenes,
            site_name,
            acquired,
            gsd,
            _center(center),
            rotation,
            model,
            workers,
            scheduler,
            as_json,
            store_url,
        )
        return
    from sitewatch.imagery import open_scene
    from sitewatch.pipeline import load_default_detector, pass_summary, scan
    from sitewatch.sites import get_site
    from sitewatch.store import open_store

    site = get_site(site_name)
    anchor = _center(center)
    opened = []
    try:
        for path in scenes:  # open all first: a bad file fails before any work is done
            opened.append(
                open_scene(
                    path, gsd_m=gsd, acquired=acquired, center=anchor, rotation_deg=rotation, force=force
                )
            )
        with open_store(store_url) as store:
            detector = load_default_detector(model)
            results = []
            for scene in opened:
                with progress(disable=as_json) as bar, warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    task = bar.add_task(
                        f"scanning {click.format_filename(scene.path, shorten=True)}", total=None
                    )
                    p = scan(
                        scene,
                        site,
                        detector,
                        store,
                        gsd_m=gsd,
                        progress=task_progress(bar, task),
                    )
                for w in caught:
                    if issubclass(w.category, SitewatchWarning):
                        err_console.print(f"[yellow]warning:[/] {w.message}")
                results.append(p)
                if not as_json:
                    out_console.print(describe(p))
    finally:
        for s in opened:
            s.close()
    if as_json:
        click.echo(json.dumps([pass_summary(p) for p in results], indent=1))


def _scan_on_cluster(
    scenes, site_name, acquired, gsd, anchor, rotation, model, workers, scheduler, as_json, store_url
) -> None:  # noqa: ANN001
    """``--workers``/``--scheduler``: scan on Dask (:func:`sitewatch.scale.scan_many`), one line per scene."""
    from rich.markup import escape

    from sitewatch.pipeline import pass_summary
    from sitewatch.scale import BatchScanError, scan_many

    if workers is not None and scheduler is not None:
        raise click.UsageError("give --workers (a local cluster) or --scheduler (a running one), not both")
    with progress(disable=as_json) as bar:
        task = bar.add_task(f"scanning {len(scenes)} scenes", total=None)

        def scene_done(source, p, error, notes) -> None:  # noqa: ANN001
            for note in notes:
                err_console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True, highlight=False)
            if error is not None:
                err_console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
            elif not as_json:
                out_console.print(describe(p))

        try:
            results = scan_many(
                scenes,
                site_name,
                store_url=store_url,
                workers=workers,
                scheduler_address=scheduler,
                model=model,
                gsd_m=gsd,
                acquired=acquired,
                center=anchor,
                rotation_deg=rotation,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                on_scene=scene_done,
            )
        except BatchScanError as e:
            results = e.passes
            if as_json:
                click.echo(json.dumps([pass_summary(p) for p in results], indent=1))
            raise
    if as_json:
        click.echo(json.dumps([pass_summary(p) for p in results], indent=1))
