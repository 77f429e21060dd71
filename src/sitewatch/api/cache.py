"""Encoded responses of one pass (its detections pages, its summary, its preview), cached in the server.

A stored pass never changes: a rescan (``scan --force``, a watch retry, a scan job) stores a new pass
under a new id and deletes the old one, ids are never reused, and nothing updates a stored pass in
place (a schema upgrade by a newer sitewatch aside: restart the server after one). So the bytes of
a per-pass response are a function of the request's path (which names the pass) and query, for as
long as the pass exists. They are cached here by path and query as sent (an LRU bounded in bytes, per
server, i.e. per store) with a strong ``ETag`` (a hash of the bytes): a client that sends it back in
``If-None-Match`` gets ``304 Not Modified`` without the body.

What the cache must never do is answer for a pass that has been deleted or replaced, by this server
or by another process on the same store (``sitewatch watch``, ``sitewatch scan --force``). Each entry
is therefore valid for one *change mark* of the store (:meth:`~sitewatch.store.Store.change_mark`:
on SQLite a number that changes whenever any connection commits, read in microseconds): while the
mark is the one at which the entry was last confirmed, nothing was committed since and the entry is
served with no database work; after any commit, the pass is looked up again (one indexed row: its id
and storage time) before the entry is used, and a pass that is gone is a 404 and its entries are
dropped. A store that has no mark (PostgreSQL) gets that lookup on every request.

The routes fill the cache (:func:`pass_response`) after their own validation and token check.
:class:`CachedPassResponses`, a middleware in front of the routes, answers a GET whose path and query
the routes answered before, with the same response, while the store's mark has not moved and the
request may read (the token check of the routes): no routing, no parameter parsing, no thread. Any
other request goes on to the routes.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from sitewatch.api.security import may_read
from sitewatch.errors import UnknownPassError

if TYPE_CHECKING:
    from sitewatch.api.context import ServerContext

#: ``Cache-Control`` of cached pass responses: the bytes under such a URL never change while the pass
#: exists, so a browser need not ask again for an hour; ``private`` because reads may need the token.
#: The hour bounds how long a browser may go on showing a pass deleted since.
CACHE_CONTROL = "private, max-age=3600, immutable"

#: Responses of the OpenAPI document that every cached pass route adds.
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the ETag sent in If-None-Match is current"}
}

#: Paths :class:`CachedPassResponses` looks at: the per-pass routes are under it.
PREFIX = "/api/passes/"

_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')


#: A cache key: the request's path and query string, as sent.
Key = tuple[str, bytes]


@dataclass
class CachedResponse:
    """One encoded response of a pass: its bytes, their ETag, the pass (id, storage time) and the
    store's change mark when the pass was last seen to exist (None: look it up again before use)."""

    body: bytes
    etag: str
    media_type: str
    pass_id: int
    stamp: datetime | None
    mark: Hashable | None

    def response(self, if_none_match: str | None) -> Response:
        """The response, or 304 (no body) when ``If-None-Match`` names its ETag."""
        headers = {"ETag": self.etag, "Cache-Control": CACHE_CONTROL}
        if none_match(if_none_match, self.etag):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def entity_tag(body: bytes) -> str:
    """The strong ETag of ``body``: a quoted 128-bit BLAKE2b hash."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def none_match(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or is ``*``): weak comparison, RFC 9110 13.1.2."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in _ENTITY_TAG.findall(header)


def key_of(scope: Scope) -> Key:
    return scope["path"], scope["query_string"]


class PassResponseCache:
    """A thread-safe LRU of :class:`CachedResponse` by request path and query, bounded in body bytes.

    Args:
        max_bytes: most body bytes kept; a response bigger than that is served but not kept; 0 keeps none.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[Key, CachedResponse] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def fresh(self, key: Key, mark: Hashable | None) -> CachedResponse | None:
        """The entry of ``key`` if it was confirmed at store change mark ``mark`` (not None), else None."""
        if mark is None:
            return None
        with self._lock:
            entry = self._items.get(key)
            if entry is None or entry.mark != mark:
                return None
            self._items.move_to_end(key)
            return entry

    def get(self, key: Key) -> CachedResponse | None:
        """The entry of ``key`` whatever its mark, or None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: Key, entry: CachedResponse) -> None:
        size = len(entry.body)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= len(old.body)
            self._items[key] = entry
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= len(dropped.body)

    def forget_pass(self, pass_id: int) -> None:
        """Drop every entry of ``pass_id`` (deleted, or found gone)."""
        with self._lock:
            for key in [k for k, v in self._items.items() if v.pass_id == pass_id]:
                self.nbytes -= len(self._items.pop(key).body)


def _mark(ctx: ServerContext) -> Hashable | None:
    store = ctx.opened_store()  # not opened here: opening may wait on the network
    return None if store is None else store.change_mark()


async def pass_response(
    request: Request, pass_id: int, media_type: str, make: Callable[[], bytes]
) -> Response:
    """The response of pass ``pass_id`` to ``request`` (its path and query): from the server's cache,
    else built by ``make`` (in a worker thread) and cached; with its ``ETag`` and ``Cache-Control``,
    or 304 when ``If-None-Match`` names the ETag.

    ``make`` reads the pass from the store; it is run only after the pass was found to exist. The
    caller has checked the token and the parameters.

    Raises:
        UnknownPassError: no such pass (now): its entries are dropped.
        StoreError: the store cannot be read.
    """
    ctx: ServerContext = request.app.state.ctx
    key = key_of(request.scope)
    mark = _mark(ctx)  # before the lookup below: an entry is confirmed at the mark read before it
    entry = ctx.pass_responses.fresh(key, mark)
    if entry is None:
        entry = await run_in_threadpool(_confirm_or_make, ctx, key, pass_id, mark, media_type, make)
    return entry.response(request.headers.get("if-none-match"))


def _confirm_or_make(
    ctx: ServerContext,
    key: Key,
    pass_id: int,
    mark: Hashable | None,
    media_type: str,
    make: Callable[[], bytes],
) -> CachedResponse:
    cache: PassResponseCache = ctx.pass_responses
    try:
        stamp = ctx.store.pass_stamp(pass_id)
        entry = cache.get(key)
        if entry is not None and entry.stamp == stamp:
            entry.mark = mark
            return entry
        body = make()
    except UnknownPassError:  # gone, or deleted between the lookup and make
        cache.forget_pass(pass_id)
        raise
    entry = CachedResponse(body, entity_tag(body), media_type, pass_id, stamp, mark)
    cache.put(key, entry)
    return entry


class CachedPassResponses:
    """ASGI middleware: a GET under ``/api/passes/`` whose path and query a route answered before is
    answered again from the cache while the store has not changed since and the request may read.

    It only replays what :func:`pass_response` stored for the same path and query; a request it does
    not answer (other paths, methods, a changed store, no or a wrong token) goes on to the routes,
    which answer it in full (and refresh the cache).
    """

    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(PREFIX):
            entry = self.ctx.pass_responses.fresh(key_of(scope), _mark(self.ctx))
            if entry is not None:
                request = Request(scope)
                if may_read(request, self.ctx):
                    await entry.response(request.headers.get("if-none-match"))(scope, receive, send)
                    return
        await self.app(scope, receive, send)
