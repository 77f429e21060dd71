"""Versioned schema: a ``schema_version`` table and ordered migration functions.

``MIGRATIONS[i]`` takes a store from version ``i`` to ``i + 1`` inside the caller's transaction.
A migration describes the tables as they were at its version (never the current
:func:`~sitewatch.store.schema.build_schema`), so old stores always upgrade the same way.
Append new migrations at the end and bump :data:`~sitewatch.store.schema.SCHEMA_VERSION`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Connection,
    Engine,
    Index,
    MetaData,
    Table,
    func,
    inspect,
    select,
    text,
    update,
)

from sitewatch.errors import StoreError
from sitewatch.store import schema as sc
from sitewatch.store._tx import writing

log = logging.getLogger(__name__)


def _v1_passes_detections(conn: Connection) -> None:
    """v1: passes and their detections (PostGIS extension on PostgreSQL)."""
    dialect = conn.dialect.name
    if sc.is_postgis(dialect):
        has = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first()
        if not has:
            try:
                with conn.begin_nested():
                    conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            except Exception as e:  # noqa: BLE001 - any failure means the same thing to the user
                raise StoreError(
                    f"PostGIS is not installed in database {conn.engine.url.database!r}; "
                    "run 'CREATE EXTENSION postgis' as a superuser"
                ) from e
    md = MetaData()
    passes = sc.passes_table(md, dialect, version=1)
    detections = Table("detections", md, *sc.detection_columns(dialect, version=1), sqlite_autoincrement=True)
    passes.create(conn)
    detections.create(conn)


def _v2_documents_claims(conn: Connection) -> None:
    """v2: text documents and the claims extracted from them."""
    md = MetaData()
    sc.documents_table(md, version=2).create(conn)
    sc.claims_table(md).create(conn)


def _v3_best_type_role(conn: Connection) -> None:
    """v3: ``detections.best_type`` and ``role`` (back-filled from candidates) and a category index."""
    conn.execute(text("ALTER TABLE detections ADD COLUMN best_type VARCHAR(64)"))
    conn.execute(text("ALTER TABLE detections ADD COLUMN role VARCHAR(64)"))
    md = MetaData()
    det = Table("detections", md, *sc.detection_columns(conn.dialect.name, version=3))
    Index("ix_detections_pass_category", det.c.pass_id, det.c.category).create(conn)
    rows = conn.execute(select(det.c.id, det.c.candidates).where(det.c.candidates.is_not(None))).all()
    for det_id, cands in rows:
        if cands:
            conn.execute(
                update(det)
                .where(det.c.id == det_id)
                .values(best_type=cands[0]["type_id"], role=cands[0]["role"])
            )


def _v4_document_hash(conn: Connection) -> None:
    """v4: ``documents.content_hash`` (indexed, back-filled from the stored text)."""
    conn.execute(text("ALTER TABLE documents ADD COLUMN content_hash VARCHAR(64)"))
    docs = sc.documents_table(MetaData(), version=4)
    Index("ix_documents_content_hash", docs.c.content_hash).create(conn)
    for doc_id, body in conn.execute(select(docs.c.id, docs.c.text)).all():
        conn.execute(update(docs).where(docs.c.id == doc_id).values(content_hash=sc.content_hash(body)))


def _v5_watch(conn: Connection) -> None:
    """v5: the watcher's state: items seen per site and source, source polls, alerts and their deliveries."""
    md = MetaData()
    for table in (
        sc.watch_items_table(md),
        sc.watch_sources_table(md),
        sc.alerts_table(md),
        sc.alert_deliveries_table(md),
    ):
        table.create(conn)


def _v6_observed_scene_hash(conn: Connection) -> None:
    """v6: ``passes.observed``/``observed_coverage``/``zone_coverage`` (valid-pixel coverage) and
    ``scene_hash``.

    Passes stored before v6 keep these NULL: their coverage is the image outline's (unknown validity).
    """
    for col in sc.pass_columns_v6(conn.dialect.name):
        kind = col.type.compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE passes ADD COLUMN {col.name} {kind}"))
    passes = sc.passes_table(MetaData(), conn.dialect.name, version=6)
    Index("ix_passes_site_scene_hash", passes.c.site, passes.c.scene_hash).create(conn)


#: Ordered migrations: ``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _v1_passes_detections,
    _v2_documents_claims,
    _v3_best_type_role,
    _v4_document_hash,
    _v5_watch,
    _v6_observed_scene_hash,
)
assert len(MIGRATIONS) == sc.SCHEMA_VERSION


def current_version(conn: Connection) -> int:
    """The store's schema version (0 for an empty database)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    version_table = sc.schema_version_table(MetaData())
    return int(conn.execute(select(func.coalesce(func.max(version_table.c.version), 0))).scalar_one())


def upgrade(engine: Engine, target: int | None = None) -> int:
    """Apply pending migrations, each in its own transaction; return the resulting version.

    Args:
        engine: the store's engine.
        target: stop at this version (default: :data:`~sitewatch.store.schema.SCHEMA_VERSION`).

    Raises:
        StoreError: the store's schema is newer than this sitewatch knows.
    """
    target = sc.SCHEMA_VERSION if target is None else target
    version_table = sc.schema_version_table(MetaData())
    with engine.connect() as conn:  # a read first: an up-to-date (or read-only) store is never written
        version = current_version(conn)
    if version < target and version <= sc.SCHEMA_VERSION:
        with writing(engine) as conn:
            version_table.create(conn, checkfirst=True)
    if version > sc.SCHEMA_VERSION:
        raise StoreError(
            f"store {engine.url.render_as_string(hide_password=True)} has schema v{version}, newer than this "
            f"sitewatch (v{sc.SCHEMA_VERSION}); upgrade sitewatch"
        )
    while version < target:
        # One write transaction per migration; the version is read again inside it, so concurrent
        # first opens of a store apply each migration once.
        with writing(engine) as conn:
            version = current_version(conn)
            if version >= target:
                break
            MIGRATIONS[version](conn)
            version += 1
            conn.execute(version_table.insert().values(version=version, applied=datetime.now(UTC)))
        log.info("store schema upgraded to v%d", version)
    return version
