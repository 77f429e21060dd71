"""Compare passes of a site: co-registration, object change (arrived/departed/remained/moved),
pixel change, plain summaries, timelines."""

from sitewatch.compare.change import ChangeMap, change_map, cloud_mask
from sitewatch.compare.comparison import (
    Comparison,
    PassImage,
    compare_images,
    compare_passes,
    write_change_map,
)
from sitewatch.compare.matching import STATUSES, ObjectChange, match_detections
from sitewatch.compare.registration import Registration, phase_correlate, register
from sitewatch.compare.settings import CompareSettings
from sitewatch.compare.timeline import timeline

__all__ = [
    "STATUSES",
    "ChangeMap",
    "CompareSettings",
    "Comparison",
    "ObjectChange",
    "PassImage",
    "Registration",
    "change_map",
    "cloud_mask",
    "compare_images",
    "compare_passes",
    "match_detections",
    "phase_correlate",
    "register",
    "timeline",
    "write_change_map",
]
