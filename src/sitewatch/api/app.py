"""The FastAPI application of ``sitewatch serve``: REST API, map tiles and the web dashboard."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request

from sitewatch import __version__
from sitewatch.api.cache import CachedPassResponses
from sitewatch.api.context import ServerContext
from sitewatch.api.errors import install_error_handlers
from sitewatch.api.security import require_read
from sitewatch.api.settings import ApiSettings
from sitewatch.errors import SitewatchError

log = logging.getLogger(__name__)


def create_app(
    store_url: str | None = None,
    settings: ApiSettings | None = None,
    *,
    detector_factory: Callable[[], Any] | None = None,
) -> FastAPI:
    """Build the web API over one store.

    Args:
        store_url: SQLAlchemy URL of the store (``sqlite:///...`` or ``postgresql://...``); None: the
            default embedded store under ``$SITEWATCH_HOME``. The store is opened on the first request,
            so a server whose database is down answers 503 until it comes back.
        settings: token, CORS, imagery roots, upload limit (default: from ``SITEWATCH_API_*``).
        detector_factory: makes the detector scan jobs use (default: the configured ONNX model).

    Returns:
        The application (serve it with uvicorn, or test it with ``fastapi.testclient.TestClient``).
    """
    from sitewatch.api import alerts, analysis, jobs, passes, sites, tiles, web

    settings = settings or ApiSettings()
    ctx = ServerContext(store_url, settings, detector_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.jobs.start()
        warm = _start_warm_up(ctx) if settings.warm_reports else None
        gc.freeze()  # what start-up made lives as long as the server: out of the collector's full passes
        try:
            yield
        finally:
            if warm is not None and warm.is_alive():
                warm.terminate()
            app.state.jobs.shutdown()
            ctx.close()

    app = FastAPI(
        title="sitewatch",
        version=__version__,
        summary="Imagery intelligence on watched sites: passes, detections, changes, assessments, reports.",
        lifespan=lifespan,
        # FastAPI's Swagger UI and ReDoc load their scripts from a CDN: only the OpenAPI JSON is served
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.jobs = jobs.JobManager(ctx)
    install_error_handlers(app)
    app.add_middleware(CachedPassResponses, ctx=ctx)  # innermost: CORS below wraps it
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])  # fmt: skip

    @app.get("/api/health", tags=["server"], dependencies=[Depends(require_read)])
    def health(request: Request) -> dict[str, Any]:
        """Server and store status."""
        ctx = request.app.state.ctx
        return {"status": "ok", "version": __version__, "store": ctx.store.url, "dialect": ctx.store.dialect,
                "report_warm_up": ctx.warm_up}  # fmt: skip

    for module in (sites, passes, analysis, alerts, jobs, tiles, web):
        app.include_router(module.router)
    web.mount_static(app)
    return app


def _start_warm_up(ctx: ServerContext) -> multiprocessing.process.BaseProcess:
    """Build the report data of every site with passes in a child process and cache it as it comes.

    A child process, not a thread: building a report is Python work that would hold the server's
    interpreter, and every request would wait behind it while it runs.
    """
    spawn = multiprocessing.get_context("spawn")
    received, sent = spawn.Pipe(duplex=False)
    warm = spawn.Process(
        target=_warm_reports, args=(ctx.store_url, ctx.settings, sent), name="sitewatch-warm"
    )
    warm.daemon = True
    warm.start()
    sent.close()
    ctx.warm_up = "building"
    threading.Thread(
        target=_cache_warm_reports, args=(ctx, received), name="sitewatch-warm", daemon=True
    ).start()
    return warm


def _warm_reports(store_url: str | None, settings: ApiSettings, conn: Any) -> None:
    """Build the report data of every site with passes and send ``(cache key, data)`` down ``conn``.

    Runs in a child process at low priority, so that the server's own interpreter goes on answering
    requests while reports are built (errors are logged, not raised: a warm-up failure only means a
    slower first request).
    """
    from sitewatch.api.analysis import report_data

    os.nice(19)
    ctx = ServerContext(store_url, settings)
    try:
        names = ctx.store.sites()
    except SitewatchError as e:
        log.warning("no report warm-up: %s", e)
        return
    for name in names:
        try:
            data = report_data(ctx, name)
            conn.send((ctx.state_key(ctx.site(name)), data))
        except Exception as e:  # noqa: BLE001
            log.warning("report data of %s not prepared: %s", name, " ".join(str(e).split()))
    conn.close()
    ctx.close()


def _cache_warm_reports(ctx: ServerContext, conn: Any) -> None:
    """Put the report data the warm-up process sends into the server's report cache."""
    while True:
        try:
            key, data = conn.recv()
        except (EOFError, OSError):
            ctx.warm_up = "done"
            return
        ctx.reports.put(key, data)
        gc.freeze()  # long-lived: keep the collector from walking it again on every full collection
        log.info("report data of %s ready", key[0])
