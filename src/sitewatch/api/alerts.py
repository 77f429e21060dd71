"""Routes of the watcher's alerts (``sitewatch watch``): JSON and an Atom feed, all sites or one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from sitewatch.api.security import require_read

router = APIRouter(prefix="/api", tags=["alerts"])

_ATOM: dict[int | str, dict[str, Any]] = {200: {"content": {"application/atom+xml": {}}}}


def _alerts(request: Request, site: str | None, limit: int) -> list[Any]:
    from sitewatch.store.watchstate import WatchLedger

    ctx = request.app.state.ctx
    name = ctx.site(site).name if site is not None else None
    return WatchLedger(ctx.store).alerts(name, limit=limit)


@router.get("/alerts", dependencies=[Depends(require_read)])
def alerts(
    request: Request, site: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """The newest alerts raised by ``sitewatch watch`` (of one site with ``site``), newest first."""
    from sitewatch.watch.channels import alert_json

    return [alert_json(a) for a in _alerts(request, site, limit)]


@router.get("/alerts.atom", dependencies=[Depends(require_read)], response_class=Response, responses=_ATOM)
def alerts_atom(
    request: Request, site: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    """The same alerts as an Atom feed (subscribe to it in a feed reader)."""
    from sitewatch.watch.channels import atom_document

    feed_id = f"urn:sitewatch:alerts:{site or 'all'}"
    body = atom_document(
        _alerts(request, site, limit), feed_id, f"sitewatch alerts{': ' + site if site else ''}"
    )
    return Response(body, media_type="application/atom+xml")
