"""The FastAPI application of ``sitewatch serve``: REST API, map tiles and the web dashboard."""

from __future__ import annotations

import logging
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
        if settings.warm_reports:
            threading.Thread(target=_warm_reports, args=(ctx,), name="sitewatch-warm", daemon=True).start()
        try:
            yield
        finally:
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
        store = request.app.state.ctx.store
        return {"status": "ok", "version": __version__, "store": store.url, "dialect": store.dialect}

    for module in (sites, passes, analysis, alerts, jobs, tiles, web):
        app.include_router(module.router)
    web.mount_static(app)
    return app


def _warm_reports(ctx: ServerContext) -> None:
    """Build and cache the report data of every site with passes (errors are logged, not raised)."""
    from sitewatch.api.analysis import report_data

    try:
        names = ctx.store.sites()
    except SitewatchError as e:
        log.warning("no report warm-up: %s", e)
        return
    for name in names:
        try:
            report_data(ctx, name)
            log.info("report data of %s ready", name)
        except Exception as e:  # noqa: BLE001 - a warm-up failure only means a slower first request
            log.warning("report data of %s not prepared: %s", name, " ".join(str(e).split()))
