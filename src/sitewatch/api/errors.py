"""Errors of the web API, and the ONE table that turns sitewatch errors into HTTP status codes.

The library never raises HTTP errors: handlers let :class:`~sitewatch.errors.SitewatchError`
subclasses propagate and :func:`status_for` maps them here, at the edge (most specific class first,
following the exception's MRO). Every error response is JSON:
``{"error": "<class name>", "detail": "<one line>", "field": "<query/body field>" | null}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitewatch import errors as e

log = logging.getLogger(__name__)


class ApiError(e.SitewatchError):
    """Root of the errors only the web API raises."""


class BadParameterError(ApiError, ValueError):
    """A query or body value the API cannot use; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(ApiError, LookupError):
    """A resource (scene file, job, detection) that does not exist."""


class AuthenticationError(ApiError, PermissionError):
    """No token, or a wrong one."""


class WriteDisabledError(ApiError, PermissionError):
    """A write while no token is configured: the server is read-only."""


class ForbiddenPathError(ApiError, PermissionError):
    """A scene path outside the configured imagery roots."""


class UploadTooLargeError(ApiError, ValueError):
    """An upload above ``max_upload_mb``."""


class UnsupportedMediaError(ApiError, ValueError):
    """An upload that is not an image sitewatch can read."""


class ConflictError(ApiError, ValueError):
    """A write that clashes with what is stored (e.g. a site of the same name)."""


#: sitewatch error class → HTTP status. Looked up along the exception's MRO: the first class
#: listed wins, so subclasses (UnknownPassError) come before their bases (StoreError).
STATUS_CODES: dict[type[BaseException], int] = {
    BadParameterError: 422,
    NotFoundError: 404,
    AuthenticationError: 401,
    WriteDisabledError: 403,
    ForbiddenPathError: 403,
    UploadTooLargeError: 413,
    UnsupportedMediaError: 415,
    ConflictError: 409,
    e.UnknownPassError: 404,
    e.SiteError: 404,
    e.CoverageError: 422,
    e.GeoreferenceError: 422,
    e.CompareError: 422,
    e.ClaimsError: 422,
    e.LibraryError: 422,
    e.SceneError: 422,
    e.ModelError: 503,
    e.StoreError: 503,
    e.ReportError: 500,
    e.SitewatchError: 400,
}


def status_for(exc: BaseException) -> int:
    """The HTTP status of a sitewatch error (500 for anything not in :data:`STATUS_CODES`)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def error_body(kind: str, detail: str, field: str | None = None) -> dict[str, Any]:
    return {"error": kind, "detail": detail, "field": field}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


async def _sitewatch_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    detail = _one_line(str(exc))
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, detail)
    else:
        log.info("%s %s → %d: %s", request.method, request.url.path, status, detail)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        error_body(type(exc).__name__, detail, getattr(exc, "field", None)), status, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
    field = ".".join(loc) or None
    detail = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return JSONResponse(error_body("ValidationError", _one_line(detail), field), 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body("HTTPError", _one_line(str(exc.detail))), exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse(error_body("InternalError", "internal error (see the server log)"), 500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON: sitewatch errors by :data:`STATUS_CODES`, validation as 422."""
    app.add_exception_handler(e.SitewatchError, _sitewatch_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
