"""``sitewatch serve``: the REST API and web dashboard over a store (FastAPI + uvicorn)."""

from __future__ import annotations

import click

from sitewatch.cli.options import store_option


@click.command("serve")
@store_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--imagery-root", "imagery_roots", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Folder whose scenes scan jobs may read by path (repeatable; adds to "
                   "SITEWATCH_API_IMAGERY_ROOTS).")  # fmt: skip
@click.option(
    "--warm/--no-warm",
    default=True,
    show_default=True,
    help="Build each site's assessment in the background at start, so the dashboard shows it sooner.",
)
def command(store_url: str | None, host: str, port: int, imagery_roots: tuple[str, ...], warm: bool) -> None:
    """Serve the REST API (/api, described by /openapi.json) and the web dashboard (/sites) of a store.

    Writes (adding sites, claims, scans; deleting passes) need SITEWATCH_API_TOKEN set on the
    server and sent by clients as 'Authorization: Bearer TOKEN'; when it is set, reads need it too.

    Example: sitewatch serve --store sqlite:///demo-out/demo-store.db
    """
    from pathlib import Path

    try:
        import rio_tiler  # noqa: F401 - imagery tiles
        import uvicorn
    except ImportError:
        raise click.UsageError(
            "sitewatch serve needs the 'serve' extra: pip install 'sitewatch[serve]'"
        ) from None
    from sitewatch.api import ApiSettings, create_app
    from sitewatch.cli.console import err_console

    settings = ApiSettings()
    settings.warm_reports = warm
    settings.imagery_roots = [*settings.imagery_roots, *(Path(r) for r in imagery_roots)]
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.token:
        err_console.print(
            f"[yellow]warning:[/] listening on {host} without SITEWATCH_API_TOKEN: anyone who can reach it "
            "can read the store"
        )
    from sitewatch.store import open_store

    # A store URL that cannot work is refused now (one line, exit 2), not on the first request.
    with open_store(store_url):
        pass
    app = create_app(store_url, settings)
    err_console.print(
        f"sitewatch dashboard: http://{host}:{port}/sites  OpenAPI: http://{host}:{port}/openapi.json"
    )
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=30)
