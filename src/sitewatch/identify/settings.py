"""Tunable thresholds of identification, in one pydantic settings object.

``SITEWATCH_IDENTIFY_<FIELD>`` environment variables, or keyword arguments, override them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sitewatch.settings import FileSettings


class IdentifySettings(FileSettings):
    """Settings for labelling identified detections (:mod:`sitewatch.identify.hierarchy`).

    Attributes:
        label_threshold: an output names the most specific level of the hierarchy (type, family,
            role, size class) whose calibrated probability is at least this; below it at every
            level the object is "unidentified <category>". Above 0.5, so at most one group of a
            level can reach it.
        keep_min_probability: :func:`~sitewatch.identify.identify_detections` keeps every type
            candidate at least this probable (besides the top k), so that the family, role and
            size-class sums computed later from stored candidates lose at most this much per type.
        refine: refine aircraft boxes on the image chip (their silhouette) before measuring, when
            the scene's pixels are at hand (:mod:`sitewatch.identify.refine`); False measures the
            detector's boxes as they are (with their bias correction).
    """

    config_table: ClassVar[str | None] = "identify"
    model_config = SettingsConfigDict(env_prefix="SITEWATCH_IDENTIFY_", extra="ignore")

    label_threshold: float = Field(0.7, gt=0.5, le=1.0)
    keep_min_probability: float = Field(0.005, ge=0.0, lt=0.5)
    refine: bool = True
