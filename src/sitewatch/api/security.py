"""Who may read and write: the shared token, checked in constant time.

Writes always need the token (while none is configured the server is read-only); reads need it
only when one is configured. Browsers fetch map tiles and chips without headers, so the token is
also accepted as the ``access_token`` query parameter.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Request

from sitewatch.api.errors import AuthenticationError, WriteDisabledError

if TYPE_CHECKING:
    from sitewatch.api.context import ServerContext


def _presented(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("access_token")


def _check(request: Request, token: str) -> None:
    given = _presented(request)
    if given is None:
        raise AuthenticationError("this server needs a token: send 'Authorization: Bearer TOKEN'")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthenticationError("wrong token")


def may_read(request: Request, ctx: ServerContext) -> bool:
    """Whether :func:`require_read` lets ``request`` through (no token configured, or the right one)."""
    if not ctx.settings.token:
        return True
    given = _presented(request)
    return given is not None and hmac.compare_digest(given.encode(), ctx.settings.token.encode())


async def require_read(request: Request) -> None:
    """FastAPI dependency of every read: the token when one is configured."""
    ctx: ServerContext = request.app.state.ctx
    if ctx.settings.token:
        _check(request, ctx.settings.token)


async def require_write(request: Request) -> None:
    """FastAPI dependency of every write: always the token.

    Raises:
        WriteDisabledError: no token configured (the server is read-only).
        AuthenticationError: missing or wrong token.
    """
    ctx: ServerContext = request.app.state.ctx
    if not ctx.settings.token:
        raise WriteDisabledError("writes are disabled: start the server with SITEWATCH_API_TOKEN set")
    _check(request, ctx.settings.token)
