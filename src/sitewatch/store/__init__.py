"""Persistence of passes, detections, documents and claims.

Embedded SQLite by default (WAL, foreign keys), PostgreSQL + PostGIS selected by a ``postgresql://``
URL; versioned schema with ordered migrations (:mod:`sitewatch.store.migrations`).
"""

from sitewatch.store.features import (
    detection_from_feature,
    detection_to_feature,
    pass_from_feature_collection,
    pass_to_feature_collection,
)
from sitewatch.store.schema import SCHEMA_VERSION
from sitewatch.store.store import Store, open_store

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "detection_from_feature",
    "detection_to_feature",
    "open_store",
    "pass_from_feature_collection",
    "pass_to_feature_collection",
]
