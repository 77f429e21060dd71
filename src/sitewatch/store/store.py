"""The :class:`Store`: passes, detections, documents and claims in SQLite or PostgreSQL/PostGIS.

The embedded default is SQLite (WAL journal, foreign keys on, busy timeout) at
``Settings().resolved_store_url()``; a ``postgresql://`` URL selects PostgreSQL with PostGIS geometry
columns. The same code serves both; only geometry handling differs (see :mod:`sitewatch.store.schema`).
Every database failure surfaces as one-line :class:`~sitewatch.errors.StoreError` and leaves the
store as it was (each write is one transaction).
"""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from sitewatch.errors import StoreError, UnknownPassError
from sitewatch.records import flat_record, from_flat_record
from sitewatch.settings import Settings
from sitewatch.store import migrations
from sitewatch.store import schema as sc
from sitewatch.store._tx import begin_sqlite, writing
from sitewatch.types import Detection, Pass

log = logging.getLogger(__name__)

#: Seconds a writer waits for another writer's lock before failing.
BUSY_TIMEOUT_S = 30
#: ``detections`` columns named otherwise in the flat record (:func:`sitewatch.records.flat_record`),
#: kept from schema v1.
_RECORD_NAME = {"cx": "cx_px", "cy": "cy_px", "meas_gsd_m": "gsd_m"}

#: Serial numbers of the connections :meth:`Store.change_mark` reads (marks of two never compare equal).
_MARK_SERIALS = itertools.count(1)


def open_store(url: str | None = None) -> Store:
    """Open (creating and upgrading as needed) the store at ``url``.

    Args:
        url: SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql://user@host:port/db``.
            None: ``Settings().resolved_store_url()`` (embedded SQLite under ``$SITEWATCH_HOME``).

    Raises:
        StoreError: bad URL, unreachable server, unwritable location, or a schema newer than this code.
    """
    if url is None:
        url = Settings().resolved_store_url()
        _make_parent(url)
    engine = make_engine(url)
    store = Store(engine)
    try:
        with store._guard("open"):
            migrations.upgrade(engine)
    except StoreError:
        engine.dispose()
        raise
    return store


def _make_parent(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. SITEWATCH_HOME names a file
            raise StoreError(
                f"store folder {folder}: cannot be created ({e.strerror or e}); is SITEWATCH_HOME a folder?"
            ) from e


def make_engine(url_text: str) -> Engine:
    """A SQLAlchemy engine for a store URL, configured for sitewatch (no schema work).

    Raises:
        StoreError: a malformed or unsupported URL, or a SQLite file in a missing folder.
    """
    try:
        url = make_url(url_text)
        url.port  # noqa: B018 - a non-numeric port fails here, not at connect time
    except (ArgumentError, ValueError) as e:
        raise StoreError(
            f"bad store URL {url_text!r}: expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from e
    try:
        return _engine(url)
    except (NoSuchModuleError, ImportError) as e:
        raise StoreError(f"unsupported store URL {url.render_as_string(hide_password=True)!r}: {e}") from e


def _engine(url: Any) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and not url.database.startswith("file:") and url.database != ":memory:":
            folder = Path(url.database).expanduser().parent
            if not folder.is_dir():
                raise StoreError(f"store folder {folder} does not exist")
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername=_pg_driver())
        return create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
    raise StoreError(
        f"unsupported store URL {url.render_as_string(hide_password=True)!r}: use sqlite:/// or postgresql://"
    )


def _pg_driver() -> str:
    """The installed PostgreSQL driver: psycopg (3) if present, else psycopg2 (the ``postgres`` extra)."""
    import importlib.util

    return "postgresql+psycopg" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2"


def _configure_sqlite(engine: Engine) -> None:
    """WAL journal, foreign keys, busy timeout, real BEGIN/COMMIT around every transaction, and
    ``BEGIN IMMEDIATE`` for write transactions (see :mod:`sitewatch.store._tx`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below delimit transactions
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except Exception:  # noqa: BLE001 - a read-only store keeps its journal mode
            log.debug("could not switch %s to WAL", engine.url)
        cur.close()

    event.listen(engine, "begin", begin_sqlite)


@overload
def _utc(dt: datetime) -> datetime: ...
@overload
def _utc(dt: None) -> None: ...
def _utc(dt: datetime | None) -> datetime | None:
    """Timezone-aware UTC (naive values are taken as UTC)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def _json(value: Any) -> Any:
    """A plain-JSON copy (datetimes as ISO strings) so every backend stores the same thing."""
    return json.loads(json.dumps(value, default=_jsonable))


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    lines = [ln.strip() for ln in str(orig).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


class Store:
    """Persistence of passes, detections, documents and claims.

    Use :func:`open_store` to get one. A context manager: ``with open_store() as store: ...``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.schema = sc.build_schema(self.dialect)
        self._postgis = sc.is_postgis(self.dialect)
        #: the detection columns filled from a detection's flat record
        self._detection_columns = [
            c.name for c in self.schema.detections.columns if c.name not in ("id", "pass_id", "footprint")
        ]
        self._mark_lock = threading.Lock()
        self._mark_conn: sqlite3.Connection | None = None
        self._mark_serial = 0
        self._marks = engine.dialect.name == "sqlite" and engine.driver == "pysqlite"

    @property
    def url(self) -> str:
        """The store URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def close(self) -> None:
        with self._mark_lock:
            if self._mark_conn is not None:
                self._mark_conn.close()
                self._mark_conn = None
        self.engine.dispose()

    def change_mark(self) -> tuple[int, int] | None:
        """A value that changes whenever anything is committed to the store, by this process or another;
        None when the store cannot tell cheaply (PostgreSQL) or not right now.

        On SQLite it is ``PRAGMA data_version`` read on a connection of its own that never writes (the
        value changes when any other connection commits), with that connection's serial number. It
        takes microseconds and never waits for a lock (a busy database answers None), so a server can
        ask it on every request whether what it cached from the store may have changed since.
        """
        if not self._marks:
            return None
        with self._mark_lock:
            try:
                if self._mark_conn is None:
                    self._mark_conn = self._open_mark_connection()
                    if self._mark_conn is None:
                        return None
                row = self._mark_conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error as e:
                log.debug("store %s: no change mark (%s)", self.url, e)
                return None
            return self._mark_serial, int(row[0])

    def _open_mark_connection(self) -> sqlite3.Connection | None:
        """The connection :meth:`change_mark` reads: it never writes, never waits for a lock and holds no
        transaction. None (and no marks from this store) for a database that is not a file: a
        connection of its own would not see its changes."""
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        uri = bool(cparams.get("uri", False))  # a file: URL
        conn = sqlite3.connect(cargs[0], timeout=0, isolation_level=None, check_same_thread=False, uri=uri)
        if not next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), ""):
            conn.close()
            self._marks = False
            return None
        self._mark_serial = next(_MARK_SERIALS)
        return conn

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self):  # noqa: ANN202 - a context manager of a Connection
        """A write transaction that waits for other writers (``BEGIN IMMEDIATE`` / advisory lock)."""
        return writing(self.engine)

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn database failures into one-line StoreErrors."""
        try:
            yield
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as e:
            reason = _first_line(e)
            if "readonly" in reason or "read-only" in reason:
                reason = f"store is read-only ({reason})"
            raise StoreError(f"store {self.url}: cannot {action}: {reason}") from e

    # -- geometry ---------------------------------------------------------------------------------

    def _geom_in(self, wkt: str | None) -> Any:
        if wkt is None:
            return None
        if self._postgis:
            from geoalchemy2 import WKTElement

            return WKTElement(wkt, srid=sc.WGS84_SRID)
        return wkt

    def _geom_out(self, value: Any) -> BaseGeometry | None:
        if value is None:
            return None
        if isinstance(value, str):
            return shapely.from_wkt(value)
        from geoalchemy2.shape import to_shape

        return to_shape(value)

    # -- passes -----------------------------------------------------------------------------------

    def save_pass(self, p: Pass) -> int:
        """Store a pass and its detections in ONE transaction; return its id (also set on ``p.id``).

        An existing pass of the same site and the same scene — same ``scene_path`` or same
        ``scene_hash`` (the same bytes under another name) — is replaced (rescan). If anything fails,
        nothing changes.

        Raises:
            StoreError: the store cannot be written (read-only, full, unreachable).
        """
        t = self.schema.passes
        created = datetime.now(UTC)
        row = {
            "site": p.site,
            "scene_path": p.scene_path,
            "acquired": _utc(p.acquired),
            "footprint": self._geom_in(p.footprint_wkt),
            "aoi_coverage": None if p.aoi_coverage is None else float(p.aoi_coverage),
            "gsd_m": None if p.gsd_m is None else float(p.gsd_m),
            "model": p.model,
            "crs": p.crs,
            "transform": None if p.transform is None else [float(v) for v in p.transform],
            "simulated": bool(p.simulated),
            "metadata": _json(p.metadata or {}),
            "created": created,
            "observed": self._geom_in(p.observed_wkt),
            "observed_coverage": None if p.observed_coverage is None else float(p.observed_coverage),
            "zone_coverage": _json(p.zone_coverage or {}),
            "scene_hash": p.scene_hash,
        }
        with self._guard(f"save pass of {p.scene_path}"), self._write() as conn:
            same = t.c.scene_path == p.scene_path
            if p.scene_hash is not None:
                same = or_(same, t.c.scene_hash == p.scene_hash)
            old = conn.execute(select(t.c.id).where(t.c.site == p.site, same)).scalars().all()
            if old:
                conn.execute(delete(self.schema.detections).where(self.schema.detections.c.pass_id.in_(old)))
                conn.execute(delete(t).where(t.c.id.in_(old)))
                log.info("replacing pass %s of %s (%s)", old, p.site, p.scene_path)
            pass_id = int(conn.execute(t.insert().values(**row).returning(t.c.id)).scalar_one())
            rows = [self._detection_row(pass_id, d) for d in p.detections]
            if rows:
                conn.execute(self.schema.detections.insert(), rows)
        p.id, p.created = pass_id, created
        return pass_id

    def _detection_row(self, pass_id: int, d: Detection) -> dict[str, Any]:
        """The ``detections`` row of ``d``: the columns of its flat record that the table has."""
        record = flat_record(d)
        row = {c: record[_RECORD_NAME.get(c, c)] for c in self._detection_columns}
        fp = shapely.Polygon(d.footprint).wkt if d.footprint else None
        return {**row, "pass_id": pass_id, "footprint": self._geom_in(fp)}

    def _detection(self, r: Any) -> Detection:
        fp = self._geom_out(r.footprint)
        record = {_RECORD_NAME.get(c, c): value for c, value in r._mapping.items()}
        return from_flat_record(
            record | {"detection_id": r.id}, tuple(fp.exterior.coords[:-1]) if fp is not None else None
        )

    def _pass(self, r: Any, detections: list[Detection]) -> Pass:
        fp = self._geom_out(r.footprint)
        obs = self._geom_out(r.observed)
        return Pass(
            site=r.site,
            scene_path=r.scene_path,
            acquired=_utc(r.acquired),
            footprint_wkt=fp.wkt if fp is not None else None,
            aoi_coverage=r.aoi_coverage,
            gsd_m=r.gsd_m,
            model=r.model,
            crs=r.crs,
            transform=tuple(r.transform) if r.transform is not None else None,
            simulated=bool(r.simulated),
            metadata=dict(r.metadata or {}),
            detections=detections,
            id=r.id,
            created=_utc(r.created),
            observed_wkt=None if obs is None else obs.wkt,
            observed_coverage=r.observed_coverage,
            zone_coverage=dict(r.zone_coverage or {}),
            scene_hash=r.scene_hash,
        )

    def _load(self, conn: Connection, where: Any) -> list[Pass]:
        t, dt = self.schema.passes, self.schema.detections
        order = (func.coalesce(t.c.acquired, t.c.created), t.c.id)
        prows = conn.execute(select(t).where(where).order_by(*order)).all()
        if not prows:
            return []
        by_pass: dict[int, list[Detection]] = {r.id: [] for r in prows}
        for r in conn.execute(select(dt).where(dt.c.pass_id.in_(list(by_pass))).order_by(dt.c.id)):
            by_pass[r.pass_id].append(self._detection(r))
        return [self._pass(r, by_pass[r.id]) for r in prows]

    def get_pass(self, pass_id: int) -> Pass:
        """The pass with id ``pass_id`` and its detections.

        Raises:
            UnknownPassError: no such pass (a :class:`StoreError`).
            StoreError: the store cannot be read.
        """
        with self._guard(f"read pass {pass_id}"), self.engine.connect() as conn:
            found = self._load(conn, self.schema.passes.c.id == int(pass_id))
        if not found:
            raise UnknownPassError(f"no pass with id {pass_id} in store {self.url}")
        return found[0]

    def pass_stamp(self, pass_id: int) -> datetime | None:
        """When pass ``pass_id`` was stored (UTC): a cheap check that it exists, for caches.

        A rescan stores a new pass (new id), so ``(id, stamp)`` names one version of a pass.

        Raises:
            UnknownPassError: no such pass (a :class:`StoreError`).
            StoreError: the store cannot be read.
        """
        t = self.schema.passes
        with self._guard(f"read pass {pass_id}"), self.engine.connect() as conn:
            row = conn.execute(select(t.c.created).where(t.c.id == int(pass_id))).first()
        if row is None:
            raise UnknownPassError(f"no pass with id {pass_id} in store {self.url}")
        return _utc(row.created)

    def list_passes(self, site: str) -> list[Pass]:
        """All passes of ``site``, oldest → newest (by acquisition time, else storage time), with
        detections."""
        with self._guard(f"list passes of {site!r}"), self.engine.connect() as conn:
            return self._load(conn, self.schema.passes.c.site == site)

    def sites(self) -> list[str]:
        """Names of the sites that have at least one pass, sorted."""
        t = self.schema.passes
        with self._guard("list sites"), self.engine.connect() as conn:
            return list(conn.execute(select(t.c.site).distinct().order_by(t.c.site)).scalars())

    def delete_pass(self, pass_id: int) -> None:
        """Delete a pass and its detections.

        Raises:
            UnknownPassError: no such pass (a :class:`StoreError`).
            StoreError: the store cannot be written.
        """
        t = self.schema.passes
        with self._guard(f"delete pass {pass_id}"), self._write() as conn:
            conn.execute(
                delete(self.schema.detections).where(self.schema.detections.c.pass_id == int(pass_id))
            )
            n = conn.execute(delete(t).where(t.c.id == int(pass_id))).rowcount
        if not n:
            raise UnknownPassError(f"no pass with id {pass_id} in store {self.url}")

    def detections_in(
        self, area_wgs84: BaseGeometry, *, site: str | None = None, category: str | None = None
    ) -> list[tuple[int, Detection]]:
        """Detections whose footprint intersects ``area_wgs84`` (lon/lat), as ``(pass_id, detection)``.

        Runs as a PostGIS ``ST_Intersects`` query (GiST index) on PostgreSQL, in shapely on SQLite.
        Detections without a footprint (pixel-space passes) never match.
        """
        t, dt = self.schema.passes, self.schema.detections
        q = select(dt).join(t, t.c.id == dt.c.pass_id).where(dt.c.footprint.is_not(None)).order_by(dt.c.id)
        if site is not None:
            q = q.where(t.c.site == site)
        if category is not None:
            q = q.where(dt.c.category == category)
        if self._postgis:
            q = q.where(
                func.ST_Intersects(dt.c.footprint, func.ST_GeomFromText(area_wgs84.wkt, sc.WGS84_SRID))
            )
        with self._guard("query detections by area"), self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = [(r.pass_id, self._detection(r)) for r in rows]
        if not self._postgis:
            shapely.prepare(area_wgs84)
            out = [(pid, d) for pid, d in out if area_wgs84.intersects(shapely.Polygon(d.footprint))]
        return out

    # -- documents and claims ---------------------------------------------------------------------

    def add_document(
        self,
        source: str,
        text: str,
        published: datetime | None = None,
        url: str | None = None,
        title: str | None = None,
    ) -> int:
        """Store a text document (news item, statement); return its id.

        The document's :func:`~sitewatch.store.schema.content_hash` is stored with it; use
        :meth:`add_document_once` to skip a text already stored from the same source.
        """
        t = self.schema.documents
        values = {
            "source": source,
            "text": text,
            "content_hash": sc.content_hash(text),
            "published": _utc(published),
            "url": url,
            "title": title,
            "created": datetime.now(UTC),
        }
        with self._guard(f"add document from {source!r}"), self._write() as conn:
            return int(conn.execute(t.insert().values(**values).returning(t.c.id)).scalar_one())

    def add_document_once(
        self,
        source: str,
        text: str,
        published: datetime | None = None,
        url: str | None = None,
        title: str | None = None,
        claims: list[dict[str, Any]] | None = None,
    ) -> tuple[int, bool]:
        """Store a document and its claims unless the same text is stored from the same source.

        Identity is the :func:`~sitewatch.store.schema.content_hash` of the text; sources compare
        case-insensitively with whitespace collapsed. The check, the document and its claims are
        one transaction, so an interrupted ingest leaves nothing behind.

        Returns:
            ``(document id, True)`` for a new document, ``(id of the stored one, False)`` otherwise
            (nothing written).

        Raises:
            StoreError: the store cannot be written.
        """
        t, ct = self.schema.documents, self.schema.claims
        digest = sc.content_hash(text)
        key = " ".join(source.split()).casefold()
        now = datetime.now(UTC)
        values = {"source": source, "text": text, "content_hash": digest, "published": _utc(published),
                  "url": url, "title": title, "created": now}  # fmt: skip
        with self._guard(f"add document from {source!r}"), self._write() as conn:
            for doc_id, src in conn.execute(
                select(t.c.id, t.c.source).where(t.c.content_hash == digest).order_by(t.c.id)
            ):
                if " ".join(src.split()).casefold() == key:
                    return int(doc_id), False
            doc_id = int(conn.execute(t.insert().values(**values).returning(t.c.id)).scalar_one())
            rows = [{"document_id": doc_id, "site": c.get("site"),
                     "payload": _json({**c, "document_id": doc_id}), "created": now}
                    for c in claims or []]  # fmt: skip
            if rows:
                conn.execute(ct.insert(), rows)
            return doc_id, True

    def find_document(self, source: str, text: str) -> int | None:
        """Id of the document with this text (by content hash) from this source, or None."""
        t = self.schema.documents
        key = " ".join(source.split()).casefold()
        with self._guard("find document"), self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.id, t.c.source).where(t.c.content_hash == sc.content_hash(text)).order_by(t.c.id)
            ).all()
        return next((int(i) for i, src in rows if " ".join(src.split()).casefold() == key), None)

    def list_documents(self) -> list[dict[str, Any]]:
        """All documents, oldest first, as dicts (id, source, title, url, published, text, created,
        content_hash)."""
        t = self.schema.documents
        with self._guard("list documents"), self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.id)).mappings().all()
        return [{**r, "published": _utc(r["published"]), "created": _utc(r["created"])} for r in rows]

    def save_claims(self, document_id: int, claims: list[dict[str, Any]]) -> None:
        """Store the claims of a document, replacing any stored before (one transaction).

        Each claim is a JSON-able dict (datetimes become ISO strings); its ``"site"`` key, if any,
        is indexed for :meth:`list_claims`.

        Raises:
            StoreError: no such document, or the store cannot be written.
        """
        t, docs = self.schema.claims, self.schema.documents
        now = datetime.now(UTC)
        rows = [
            {"document_id": int(document_id), "site": c.get("site"), "payload": _json(c), "created": now}
            for c in claims
        ]
        with self._guard(f"save claims of document {document_id}"), self._write() as conn:
            if conn.execute(select(docs.c.id).where(docs.c.id == int(document_id))).first() is None:
                raise StoreError(f"no document with id {document_id} in store {self.url}")
            conn.execute(delete(t).where(t.c.document_id == int(document_id)))
            if rows:
                conn.execute(t.insert(), rows)

    def list_claims(self, site: str | None = None) -> list[dict[str, Any]]:
        """Stored claims (of ``site``, or all), as their payload dicts plus ``id``, ``document_id``,
        ``site``."""
        t = self.schema.claims
        q = select(t).order_by(t.c.id)
        if site is not None:
            q = q.where(t.c.site == site)
        with self._guard("list claims"), self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{**r.payload, "id": r.id, "document_id": r.document_id, "site": r.site} for r in rows]
