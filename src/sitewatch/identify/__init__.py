"""Identify: metric size with 1-sigma error bars and ranked candidate types from a reference library.

Public API: :func:`identify_detections` (the pipeline's entry point), :func:`identify_detection`
(full result with a ``reason`` when nothing could be measured), :func:`inventory_by`,
:func:`load_library`, :func:`role_of`, :func:`role_phrase`, :func:`label_detection` (the most specific
of type → family → role → size class that is probable enough). See docs/identify.md.
"""

from sitewatch.identify.candidates import UNKNOWN_ID, UNKNOWN_ROLE, Ranking, TypeScore, rank_types
from sitewatch.identify.hierarchy import LEVELS, Label, label_candidates, label_detection
from sitewatch.identify.identification import (
    Identification,
    identify_detection,
    identify_detections,
    inventory_by,
    role_probabilities,
)
from sitewatch.identify.library import EquipmentType, Library, load_library, role_of, role_phrase
from sitewatch.identify.measurement import measure_box
from sitewatch.identify.settings import IdentifySettings

__all__ = [
    "UNKNOWN_ID",
    "UNKNOWN_ROLE",
    "EquipmentType",
    "LEVELS",
    "Identification",
    "IdentifySettings",
    "Label",
    "Library",
    "Ranking",
    "TypeScore",
    "identify_detection",
    "identify_detections",
    "inventory_by",
    "label_candidates",
    "label_detection",
    "load_library",
    "measure_box",
    "rank_types",
    "role_of",
    "role_phrase",
    "role_probabilities",
]
