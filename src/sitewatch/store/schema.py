"""The store's tables (current schema version), built for one SQL dialect.

Geometry columns are WGS84 (EPSG:4326) lon/lat. On PostgreSQL they are PostGIS
``geometry(<kind>, 4326)`` columns with a GiST index (GeoAlchemy2), so spatial queries run in the
database; on SQLite they are WKT text and spatial filters run in shapely.

Pixel columns (``cx``, ``cy``, ``length_px``, ``width_px``, ``heading_px_deg``) are in the pixel frame of
the pass's scene (x right, y down; heading degrees clockwise from image-up in [0, 180)).
Metric columns are metres; ``heading_deg`` is degrees clockwise from true north.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeEngine

#: Current schema version; :mod:`sitewatch.store.migrations` brings any older store up to it.
SCHEMA_VERSION = 6

WGS84_SRID = 4326


def is_postgis(dialect_name: str) -> bool:
    """True when geometry columns are PostGIS geometries (PostgreSQL), False for WKT text."""
    return dialect_name == "postgresql"


def geometry_type(dialect_name: str, kind: str = "GEOMETRY") -> TypeEngine:
    """Column type of a WGS84 geometry: PostGIS ``geometry(kind, 4326)`` or WKT text."""
    if is_postgis(dialect_name):
        from geoalchemy2 import Geometry

        return Geometry(kind, srid=WGS84_SRID, spatial_index=True)
    return Text()


def passes_table(metadata: MetaData, dialect_name: str, version: int = SCHEMA_VERSION) -> Table:
    """One image of one site at one time, as at schema ``version`` (1 or later)."""
    return Table(
        "passes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("site", String(128), nullable=False, index=True),
        Column("scene_path", Text, nullable=False),
        Column("acquired", DateTime(timezone=True)),
        Column("footprint", geometry_type(dialect_name)),
        Column("aoi_coverage", Float),
        Column("gsd_m", Float),
        Column("model", String(256), nullable=False),
        Column("crs", Text),
        Column("transform", JSON),
        Column("simulated", Boolean, nullable=False, default=False),
        Column("metadata", JSON),
        Column("created", DateTime(timezone=True), nullable=False),
        *(pass_columns_v6(dialect_name) if version >= 6 else []),
        UniqueConstraint("site", "scene_path", name="uq_passes_site_scene"),
        sqlite_autoincrement=True,  # never reuse the id of a deleted or replaced pass
    )


def pass_columns_v6(dialect_name: str) -> list[Column]:
    """Columns added to ``passes`` in v6: what valid pixels observed, and the scene's content hash."""
    return [
        # the part of the AOI seen by valid pixels (WGS84), its share of the AOI and of each zone (0..1)
        Column("observed", geometry_type(dialect_name)),
        Column("observed_coverage", Float),
        Column("zone_coverage", JSON),
        # SHA-256 of the scene file's bytes ("sha256:<hex>"), or None for remote scenes
        Column("scene_hash", String(80)),  # indexed with the site (migration v6)
    ]


def detection_columns(dialect_name: str, version: int = SCHEMA_VERSION) -> list[Column]:
    """Columns of ``detections`` as they are at schema ``version`` (1 or later)."""
    cols: list[Column] = [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("pass_id", Integer, ForeignKey("passes.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("category", String(32), nullable=False),
        Column("score", Float, nullable=False),
        Column("cx", Float, nullable=False),
        Column("cy", Float, nullable=False),
        Column("length_px", Float, nullable=False),
        Column("width_px", Float, nullable=False),
        Column("heading_px_deg", Float, nullable=False),
        Column("footprint", geometry_type(dialect_name, "POLYGON")),
        Column("length_m", Float),
        Column("width_m", Float),
        Column("length_sigma_m", Float),
        Column("width_sigma_m", Float),
        Column("heading_deg", Float),
        Column("heading_sigma_deg", Float),
        Column("meas_gsd_m", Float),
        Column("candidates", JSON),
    ]
    if version >= 3:
        # the best type and its role group, denormalised from candidates for queries
        cols += [Column("best_type", String(64)), Column("role", String(64))]
    return cols


def documents_table(metadata: MetaData, version: int = SCHEMA_VERSION) -> Table:
    """Text reports (news, statements) ingested for claims (since v2).

    Since v4 ``content_hash`` identifies a document by its text (:func:`content_hash`).
    """
    cols: list[Column[Any]] = [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("source", String(512), nullable=False),
        Column("title", Text),
        Column("url", Text),
        Column("published", DateTime(timezone=True)),
        Column("text", Text, nullable=False),
        Column("created", DateTime(timezone=True), nullable=False),
    ]
    if version >= 4:
        cols.append(Column("content_hash", String(64), index=True))
    return Table("documents", metadata, *cols, sqlite_autoincrement=True)


def content_hash(text: str) -> str:
    """SHA-256 (hex) of a document's text, Unicode NFC-normalised with whitespace runs collapsed.

    Two texts that differ only in line wrapping, indentation or Unicode composition get one hash.
    """
    norm = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def claims_table(metadata: MetaData) -> Table:
    """Claims extracted from documents, as JSON payloads (since v2)."""
    return Table(
        "claims",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column(
            "document_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        Column("site", String(128), index=True),
        Column("payload", JSON, nullable=False),
        Column("created", DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )


def watch_items_table(metadata: MetaData) -> Table:
    """Items (scenes, STAC items) a watched source offered, and what became of each (since v5).

    ``status``: ``done`` (scanned; ``pass_id`` set), ``skipped`` (filtered out, e.g. too cloudy),
    ``retry`` (failed, tried again at ``next_attempt``) or ``failed`` (permanent, or out of attempts).
    ``item`` holds what is needed to open the item again (the STAC item dict, or the scene path).
    ``pass_id`` is a plain column, not a foreign key: deleting a pass keeps the watch history.
    """
    return Table(
        "watch_items",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("site", String(128), nullable=False),
        Column("source", String(512), nullable=False),
        Column("item_id", String(1024), nullable=False),
        Column("href", Text),
        Column("acquired", DateTime(timezone=True)),
        Column("item", JSON),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt", DateTime(timezone=True)),
        Column("error", Text),
        Column("pass_id", Integer),
        Column("first_seen", DateTime(timezone=True), nullable=False),
        Column("updated", DateTime(timezone=True), nullable=False),
        UniqueConstraint("site", "source", "item_id", name="uq_watch_items_site_source_item"),
        sqlite_autoincrement=True,
    )


def watch_sources_table(metadata: MetaData) -> Table:
    """The last poll of each watched source of each site and its outcome (since v5)."""
    return Table(
        "watch_sources",
        metadata,
        Column("site", String(128), primary_key=True),
        Column("source", String(512), primary_key=True),
        Column("last_poll", DateTime(timezone=True)),
        Column("last_ok", DateTime(timezone=True)),
        Column("error", Text),
        Column("failures", Integer, nullable=False, default=0),
    )


def alerts_table(metadata: MetaData) -> Table:
    """Alerts raised by the watcher, one per (item, kind, subject), with their evidence (since v5)."""
    return Table(
        "alerts",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("site", String(128), nullable=False, index=True),
        Column("source", String(512), nullable=False),
        Column("item_id", String(1024), nullable=False),
        Column("pass_id", Integer),
        Column("kind", String(32), nullable=False),
        Column("subject", String(128), nullable=False),
        Column("title", Text, nullable=False),
        Column("payload", JSON, nullable=False),
        Column("created", DateTime(timezone=True), nullable=False),
        UniqueConstraint("site", "source", "item_id", "kind", "subject", name="uq_alerts_item_kind_subject"),
        sqlite_autoincrement=True,
    )


def alert_deliveries_table(metadata: MetaData) -> Table:
    """Delivery of each alert on each channel: ``pending``, ``sent`` or ``failed`` (since v5)."""
    return Table(
        "alert_deliveries",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("channel", String(128), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt", DateTime(timezone=True)),
        Column("error", Text),
        Column("sent", DateTime(timezone=True)),
        UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_alert_channel"),
        sqlite_autoincrement=True,
    )


@dataclass(frozen=True)
class Schema:
    """The current tables for one dialect."""

    metadata: MetaData
    passes: Table
    detections: Table
    documents: Table
    claims: Table
    schema_version: Table
    watch_items: Table
    watch_sources: Table
    alerts: Table
    alert_deliveries: Table


def schema_version_table(metadata: MetaData) -> Table:
    """One row per applied migration."""
    return Table(
        "schema_version",
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("applied", DateTime(timezone=True), nullable=False),
    )


def build_schema(dialect_name: str) -> Schema:
    """The tables at :data:`SCHEMA_VERSION` for ``dialect_name`` (``"sqlite"``, ``"postgresql"``)."""
    md = MetaData()
    detections = Table("detections", md, *detection_columns(dialect_name), sqlite_autoincrement=True)
    return Schema(
        metadata=md,
        passes=passes_table(md, dialect_name),
        detections=detections,
        documents=documents_table(md),
        claims=claims_table(md),
        schema_version=schema_version_table(md),
        watch_items=watch_items_table(md),
        watch_sources=watch_sources_table(md),
        alerts=alerts_table(md),
        alert_deliveries=alert_deliveries_table(md),
    )
