"""Passes and detections as GeoJSON (RFC 7946, WGS84 lon/lat) features, round-tripping exactly.

A detection feature's geometry is its WGS84 footprint polygon (null for pixel-space passes); its
properties hold the pixel box (scene pixel frame), category, score, measurement (metres) and type
candidates, plus flat ``best_type``/``role``/``length_m``/``width_m`` columns for GIS tools.
A pass is a FeatureCollection of its detections with the pass fields under ``"pass"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import shapely
from shapely.geometry import mapping, shape

from sitewatch.records import flat_record, label_fields
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox, Pass

#: Columns of :func:`~sitewatch.records.flat_record` and :func:`~sitewatch.records.label_fields` a
#: feature holds flat, in order; ``type_name`` is published as ``best_type_name`` here.
FEATURE_COLUMNS = ("detection_id", "category", "score", "best_type", "type_name", "role",
                   "type_probability", "label", "label_level", "label_probability", "length_m", "width_m",
                   "heading_deg")  # fmt: skip
_PUBLISHED_AS = {"type_name": "best_type_name"}


def detection_to_feature(d: Detection, **extra: Any) -> dict[str, Any]:
    """A GeoJSON Feature for ``d``; ``extra`` items are added to its properties (e.g. ``pass_id``)."""
    fields = flat_record(d) | label_fields(d)
    props: dict[str, Any] = {
        **extra,
        **{_PUBLISHED_AS.get(c, c): fields[c] for c in FEATURE_COLUMNS},
        "box": d.box.to_dict(),
        "measurement": d.measurement.to_dict() if d.measurement else None,
        "candidates": fields["candidates"],
    }
    geometry = mapping(shapely.Polygon(d.footprint)) if d.footprint else None
    return {"type": "Feature", "id": d.id, "geometry": geometry, "properties": props}


def detection_from_feature(feature: dict[str, Any]) -> Detection:
    """The :class:`Detection` a feature from :func:`detection_to_feature` describes."""
    props = feature["properties"]
    footprint = None
    if feature.get("geometry"):
        footprint = tuple((float(x), float(y)) for x, y in shape(feature["geometry"]).exterior.coords[:-1])
    return Detection(
        box=OrientedBox.from_dict(props["box"]),
        category=props["category"],
        score=float(props["score"]),
        footprint=footprint,
        measurement=Measurement.from_dict(props["measurement"]) if props.get("measurement") else None,
        candidates=tuple(Candidate.from_dict(c) for c in props.get("candidates") or ()),
        id=props.get("detection_id"),
    )


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def pass_properties(p: Pass) -> dict[str, Any]:
    """The fields of a pass (no detections) as JSON-ready values."""
    return {
        "id": p.id,
        "site": p.site,
        "scene_path": p.scene_path,
        "acquired": _iso(p.acquired),
        "footprint_wkt": p.footprint_wkt,
        "aoi_coverage": p.aoi_coverage,
        "gsd_m": p.gsd_m,
        "model": p.model,
        "crs": p.crs,
        "transform": list(p.transform) if p.transform is not None else None,
        "simulated": p.simulated,
        "metadata": p.metadata,
        "created": _iso(p.created),
    }


def pass_to_feature_collection(p: Pass) -> dict[str, Any]:
    """A FeatureCollection of the pass's detections, with the pass under ``"pass"``."""
    props = pass_properties(p)
    feats = [
        detection_to_feature(d, pass_id=p.id, site=p.site, acquired=props["acquired"]) for d in p.detections
    ]
    return {"type": "FeatureCollection", "pass": props, "features": feats}


def pass_from_feature_collection(fc: dict[str, Any]) -> Pass:
    """The :class:`Pass` a collection from :func:`pass_to_feature_collection` describes."""
    pp = fc["pass"]
    return Pass(
        site=pp["site"],
        scene_path=pp["scene_path"],
        acquired=datetime.fromisoformat(pp["acquired"]) if pp.get("acquired") else None,
        footprint_wkt=pp.get("footprint_wkt"),
        aoi_coverage=pp.get("aoi_coverage"),
        gsd_m=pp.get("gsd_m"),
        model=pp["model"],
        crs=pp.get("crs"),
        transform=tuple(pp["transform"]) if pp.get("transform") is not None else None,
        simulated=bool(pp.get("simulated")),
        metadata=dict(pp.get("metadata") or {}),
        detections=[detection_from_feature(f) for f in fc["features"]],
        id=pp.get("id"),
        created=datetime.fromisoformat(pp["created"]) if pp.get("created") else None,
    )
