"""Tunable thresholds of pass comparison, in one pydantic settings object.

Every threshold behind a judgement ("largely unchanged", "moved", "registration too poor") is a
named field here, so a report can quote it and a user can override it
(``SITEWATCH_COMPARE_<FIELD>`` environment variables, or keyword arguments).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sitewatch.settings import FileSettings


class CompareSettings(FileSettings):
    """Settings for :func:`sitewatch.compare.compare_passes`.

    Attributes:
        working_gsd_m: pixel size the passes are resampled to for registration and pixel change,
            metres (never finer than the coarser pass); None keeps pass A's pixels.
        max_working_px: longest side of the working grid, pixels (caps memory and time).
        max_gsd_ratio: refuse when the coarser pass has a GSD more than this times the finer one.
        min_overlap: refuse when less than this fraction of pass A's valid area is also valid in B.
        registration: "auto" (phase correlation, features when rotation/scale shows), "phase" or
            "features".
        upsample_factor: sub-pixel precision of phase correlation (1/upsample_factor pixel).
        min_phase_quality: phase-correlation quality (1 - second peak / first peak) below which
            feature matching is tried.
        min_quality: refuse when the best registration quality is below this.
        min_inliers: RANSAC inliers a feature-based registration needs.
        translation_only_residual_px: use the similarity (rotation/scale) model only when it moves
            some corner of the grid by more than this from the pure translation, pixels.
        local_block_px: side of the blocks whose residual shifts measure local misregistration
            after registration, working pixels.
        local_max_residual_px: block residuals larger than this are outliers (moving objects),
            working pixels.
        remain_tolerance_frac: an object "remained" when its centre moved less than this fraction
            of its length (or its oriented IoU is at least ``remain_iou``).
        remain_tolerance_min_m: ... and never less than this many metres.
        remain_iou: oriented IoU at or above which a matched object "remained".
        move_radius_lengths: a same-category object within this many object lengths is the same
            object "moved"; farther apart it is one departure and one arrival.
        size_ratio_max: two detections of more different lengths than this ratio are never matched.
        change_sigma_px: Gaussian blur before differencing, working pixels.
        change_min_diff: fixed floor of the change threshold, grey levels (0-255) of the
            histogram-matched difference; the Otsu threshold is used when higher.
        min_blob_area_m2: changed blobs smaller than this are dropped, square metres.
        cloud_min_grey: cloud mask: pixels at least this bright (0-255) ...
        cloud_max_saturation: ... this unsaturated (HSV saturation 0-1) ...
        cloud_max_local_std: ... and this flat (grey std in a 9x9 window) ...
        cloud_min_area_m2: ... in blobs of at least this area, square metres, are cloud.
        max_cloud_fraction: pixel change is not assessed when cloud/nodata hides more than this
            fraction of the overlap.
        unchanged_max_object_changes: "largely unchanged" allows at most this many arrivals +
            departures + moves ...
        unchanged_max_pct_changed: ... and at most this percentage of the overlap changed.
        min_observed_fraction: passes that observed at most this fraction of the site in common
            (valid pixels, see :mod:`sitewatch.imagery.validity`) are "not observed": no count or
            change is stated.
    """

    config_table: ClassVar[str | None] = "compare"
    model_config = SettingsConfigDict(env_prefix="SITEWATCH_COMPARE_", extra="ignore")

    working_gsd_m: float | None = Field(default=1.0, gt=0)
    max_working_px: int = Field(default=2048, ge=128)
    max_gsd_ratio: float = Field(default=3.0, gt=1)
    min_overlap: float = Field(default=0.2, gt=0, le=1)
    registration: Literal["auto", "phase", "features"] = "auto"
    upsample_factor: int = Field(default=20, ge=1)
    min_phase_quality: float = Field(default=0.3, ge=0, le=1)
    min_quality: float = Field(default=0.15, ge=0, le=1)
    min_inliers: int = Field(default=12, ge=3)
    translation_only_residual_px: float = Field(default=0.5, gt=0)
    local_block_px: int = Field(default=256, ge=32)
    local_max_residual_px: float = Field(default=8.0, gt=0)
    remain_tolerance_frac: float = Field(default=0.25, gt=0)
    remain_tolerance_min_m: float = Field(default=2.0, ge=0)
    remain_iou: float = Field(default=0.5, gt=0, le=1)
    move_radius_lengths: float = Field(default=1.5, gt=0)
    size_ratio_max: float = Field(default=1.6, ge=1)
    change_sigma_px: float = Field(default=1.0, ge=0)
    change_min_diff: float = Field(default=40.0, ge=0)
    min_blob_area_m2: float = Field(default=25.0, ge=0)
    cloud_min_grey: float = Field(default=215.0)
    cloud_max_saturation: float = Field(default=0.12)
    cloud_max_local_std: float = Field(default=4.0)
    cloud_min_area_m2: float = Field(default=5000.0, ge=0)
    max_cloud_fraction: float = Field(default=0.5, ge=0, le=1)
    unchanged_max_object_changes: int = Field(default=0, ge=0)
    unchanged_max_pct_changed: float = Field(default=1.0, ge=0)
    min_observed_fraction: float = Field(default=0.01, ge=0, lt=1)
