"""The published shapes of a detection record, each written in one place.

* The nested record, what ``Detection.to_dict()`` writes: ``sitewatch detect --json`` prints a
  list of these records, ``--jsonl`` one per line. :data:`DETECTION_SCHEMA_PATH` in the docs is
  generated from :class:`DetectionRecord` (``python -m sitewatch.records``) and a test keeps the
  two equal; another test validates real ``detect --json`` output against it.
* The flat record, :func:`flat_record` (with :func:`label_fields`): one column per value, for the
  GIS exports and ``detect --geojson`` properties, the store's ``detections`` rows and the API's
  GeoJSON properties. Each of those picks its columns from it and may publish a column under an
  older name (kept stable); :func:`from_flat_record` reads it back.

Frames and units are those of :mod:`sitewatch.types`: pixels of the image detected on (x right,
y down, origin at the top-left corner of the top-left pixel), WGS84 lon/lat in degrees, metres.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sitewatch.identify.hierarchy import LEVELS, label_detection
from sitewatch.types import CATEGORIES, Candidate, Detection, Measurement, OrientedBox

#: Where the generated schemas are published, relative to the repository root.
DETECTION_SCHEMA_PATH = "docs/schemas/detection.schema.json"
FLAT_SCHEMA_PATH = "docs/schemas/detection-flat.schema.json"

Category = Literal[CATEGORIES]  # type: ignore[valid-type]
PixelPoint = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y], pixels")]
LonLat = Annotated[
    list[float], Field(min_length=2, max_length=2, description="[longitude, latitude], degrees WGS84")
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegativeOrNull = Annotated[float | None, Field(ge=0)]


class MeasurementRecord(BaseModel):
    """Metric size of a detection with 1-sigma uncertainties."""

    model_config = ConfigDict(extra="forbid")

    length_m: float = Field(
        ge=0, description="Length along the box's long axis, metres (aircraft: nose to tail)."
    )
    width_m: float = Field(ge=0, description="Extent across it, metres (aircraft: wingspan).")
    length_sigma_m: float = Field(ge=0, description="1-sigma uncertainty of length_m, metres.")
    width_sigma_m: float = Field(ge=0, description="1-sigma uncertainty of width_m, metres.")
    heading_deg: float | None = Field(
        None,
        ge=0,
        lt=360,
        description=(
            "Direction of the long axis, degrees clockwise from TRUE NORTH in [0, 180); null when not "
            "georeferenced."
        ),
    )
    heading_sigma_deg: float | None = Field(
        None, ge=0, description="1-sigma uncertainty of heading_deg, degrees."
    )
    gsd_m: float | None = Field(None, gt=0, description="Ground sample distance used, metres per pixel.")


class CandidateRecord(BaseModel):
    """One ranked type hypothesis."""

    model_config = ConfigDict(extra="forbid")

    type_id: str = Field(
        description='Reference-library key (e.g. "il-76md"), or "unknown" for the other/unknown mass.'
    )
    name: str = Field(description='Display name, e.g. "Il-76MD".')
    role: str = Field(description='Role group, e.g. "heavy transport".')
    probability: Probability = Field(
        description="Normalised likelihood; the candidates of one detection sum to at most 1."
    )
    prior_weight: float = Field(
        1.0, ge=0, description="Site-prior multiplier applied before normalising (1 = none)."
    )


class DetectionRecord(BaseModel):
    """One detected object, as written by ``sitewatch detect --json``."""

    model_config = ConfigDict(extra="forbid", title="sitewatch detection")

    id: int | None = Field(description="Store identifier, or null when not stored.")
    category: Category = Field(description="Object category.")
    score: Probability = Field(description="Detector confidence.")
    corners: list[PixelPoint] = Field(
        min_length=4, max_length=4, description="The oriented box's four corners in order around it, pixels."
    )
    center: PixelPoint = Field(description="Box centre [x, y], pixels.")
    length_px: float = Field(ge=0, description="Box extent along its long axis, pixels.")
    width_px: float = Field(ge=0, description="Box extent across it, pixels.")
    heading_px_deg: float = Field(
        ge=0,
        lt=180,
        description=(
            "Direction of the box's long axis IN THE IMAGE: degrees clockwise from image-up, in [0, 180)."
        ),
    )
    heading_deg: float | None = Field(
        ge=0,
        lt=360,
        description=(
            "Direction of the long axis on the ground, degrees clockwise from TRUE NORTH "
            "(measurement.heading_deg); null when not georeferenced. The same field as in `sitewatch export`."
        ),
    )
    footprint: list[LonLat] | None = Field(
        min_length=4,
        max_length=4,
        description="The box corners on the ground, WGS84; null when the image is not georeferenced.",
    )
    measurement: MeasurementRecord | None = Field(
        description="Metric size; null when neither a GSD nor a georeference is known."
    )
    candidates: list[CandidateRecord] = Field(
        description="Ranked type candidates, best first; empty when not identified."
    )

    @classmethod
    def of(cls, d: Detection) -> DetectionRecord:
        """The record of a detection (validates :meth:`Detection.to_dict`)."""
        return cls.model_validate(d.to_dict())


class FlatDetectionRecord(BaseModel):
    """One detection as flat columns: :func:`flat_record` with :func:`label_fields`.

    The GIS exports, ``detect --geojson`` properties, the store's rows and the API's GeoJSON
    properties pick their detection columns from these (see ``docs/pipeline.md``, "One flat record").
    """

    model_config = ConfigDict(extra="forbid", title="sitewatch detection, flat")

    detection_id: int | None = Field(description="Store identifier, or null when not stored.")
    category: Category = Field(description="Object category.")
    score: Probability = Field(description="Detector confidence.")
    best_type: str | None = Field(
        description="type_id of the most likely candidate; null when not identified."
    )
    type_name: str | None = Field(description="Display name of that type.")
    role: str | None = Field(description="Role group of that type.")
    type_probability: Probability | None = Field(description="Probability of that type.")
    length_m: NonNegativeOrNull = Field(
        description="Length along the long axis, metres; null when not measured."
    )
    width_m: NonNegativeOrNull = Field(description="Extent across it, metres.")
    length_sigma_m: NonNegativeOrNull = Field(description="1-sigma uncertainty of length_m, metres.")
    width_sigma_m: NonNegativeOrNull = Field(description="1-sigma uncertainty of width_m, metres.")
    heading_deg: float | None = Field(
        ge=0,
        lt=360,
        description="Long axis on the ground, degrees clockwise from TRUE NORTH; null if not georeferenced.",
    )
    heading_sigma_deg: NonNegativeOrNull = Field(description="1-sigma uncertainty of heading_deg, degrees.")
    gsd_m: float | None = Field(
        gt=0, description="Ground sample distance the measurement used, metres per pixel."
    )
    cx_px: float = Field(description="Box centre x, pixels of the image detected on.")
    cy_px: float = Field(description="Box centre y (down), pixels.")
    length_px: float = Field(ge=0, description="Box extent along its long axis, pixels.")
    width_px: float = Field(ge=0, description="Box extent across it, pixels.")
    heading_px_deg: float = Field(
        ge=0, lt=180, description="Long axis IN THE IMAGE, degrees clockwise from image-up, in [0, 180)."
    )
    candidates: list[CandidateRecord] = Field(description="Ranked type candidates, best first.")
    label: str | None = Field(description="What may be said the object is: type, family, role or size class.")
    label_level: Literal[LEVELS] | None = Field(  # type: ignore[valid-type]
        description="The level of the label; null when not identified."
    )
    label_probability: Probability | None = Field(
        description="Probability of the label's group (4 decimals)."
    )

    @classmethod
    def of(cls, d: Detection) -> FlatDetectionRecord:
        """The flat record of a detection (validates :func:`flat_record` and :func:`label_fields`)."""
        return cls.model_validate(flat_record(d) | label_fields(d))


#: Columns of the flat record that hold the measurement: its fields, under their own names.
MEASUREMENT_COLUMNS = tuple(f.name for f in fields(Measurement))


def flat_record(d: Detection) -> dict[str, Any]:
    """One detection as flat columns, full precision, in published order (labels aside).

    ``detection_id`` is the store id; ``best_type``/``type_name``/``role``/``type_probability`` the
    best candidate's; then the measurement's fields (:data:`MEASUREMENT_COLUMNS`: ``length_m``,
    ``width_m``, their 1-sigma, ``heading_deg`` degrees clockwise from TRUE NORTH,
    ``heading_sigma_deg``, ``gsd_m`` the GSD it used); ``cx_px`` … ``heading_px_deg`` the box in the
    image's pixels (``heading_px_deg`` clockwise from image-up); ``candidates`` the candidate dicts.
    A missing best type or measurement gives None in its columns.
    """
    best, m, box = d.best_type, d.measurement, d.box
    return {
        "detection_id": d.id,
        "category": d.category,
        "score": float(d.score),
        "best_type": best.type_id if best else None,
        "type_name": best.name if best else None,
        "role": best.role if best else None,
        "type_probability": best.probability if best else None,
        **(m.to_dict() if m else dict.fromkeys(MEASUREMENT_COLUMNS)),
        "cx_px": box.cx,
        "cy_px": box.cy,
        "length_px": box.length,
        "width_px": box.width,
        "heading_px_deg": box.heading_deg,
        "candidates": [c.to_dict() for c in d.candidates],
    }


def label_fields(d: Detection) -> dict[str, Any]:
    """What outputs may say the object is (:func:`sitewatch.identify.label_detection`): ``label``,
    ``label_level`` and ``label_probability`` (4 decimals), all None when not identified.

    Kept apart from :func:`flat_record`: it walks the reference library for each detection (about
    0.6 ms), which the store's rows do not need.
    """
    label = label_detection(d) if d.candidates else None
    return {
        "label": label.text if label else None,
        "label_level": label.level if label else None,
        "label_probability": round(label.probability, 4) if label else None,
    }


def from_flat_record(
    record: Mapping[str, Any], footprint: tuple[tuple[float, float], ...] | None = None
) -> Detection:
    """The :class:`Detection` a :func:`flat_record` describes (label columns are not read).

    Args:
        record: the columns of :func:`flat_record` (others are ignored).
        footprint: the WGS84 corners, which the flat record leaves to the geometry column.
    """
    m = None
    if record["length_m"] is not None:
        m = Measurement(**{c: record[c] for c in MEASUREMENT_COLUMNS})
    return Detection(
        box=OrientedBox(
            record["cx_px"],
            record["cy_px"],
            record["length_px"],
            record["width_px"],
            record["heading_px_deg"],
        ),
        category=record["category"],
        score=record["score"],
        footprint=footprint,
        measurement=m,
        candidates=tuple(Candidate.from_dict(c) for c in (record["candidates"] or ())),
        id=record["detection_id"],
    )


def detection_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one detection record."""
    schema = DetectionRecord.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def detection_list_schema() -> dict:
    """The JSON Schema of ``detect --json`` output: an array of detection records."""
    one = detection_schema()
    defs = one.pop("$defs", {})
    one.pop("$schema")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array",
            "items": {"$ref": "#/$defs/DetectionRecord"},
            "$defs": {**defs, "DetectionRecord": one}}  # fmt: skip


def flat_record_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one flat detection record."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **FlatDetectionRecord.model_json_schema(),
    }


if __name__ == "__main__":
    # python -m sitewatch.records [flat]: the nested record's schema, or the flat record's
    json.dump(flat_record_schema() if sys.argv[1:] == ["flat"] else detection_schema(), sys.stdout, indent=2,
              ensure_ascii=False)  # fmt: skip
    sys.stdout.write("\n")
