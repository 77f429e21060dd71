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

from sitewatch.identify.hierarchy import label_detection
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox, Pass


def detection_to_feature(d: Detection, **extra: Any) -> dict[str, Any]:
    """A GeoJSON Feature for ``d``; ``extra`` items are added to its properties (e.g. ``pass_id``)."""
    best = d.best_type
    label = label_detection(d) if d.candidates else None
    props: dict[str, Any] = {
        **extra,
        "detection_id": d.id,
        "category": d.category,
        "score": float(d.score),
        "best_type": best.type_id if best else None,
        "best_type_name": best.name if best else None,
        "role": best.role if best else None,
        "type_probability": best.probability if best else None,
        "label": label.text if label else None,
        "label_level": label.level if label else None,
        "label_probability": round(label.probability, 4) if label else None,
        "length_m": d.measurement.length_m if d.measurement else None,
        "width_m": d.measurement.width_m if d.measurement else None,
        "heading_deg": d.measurement.heading_deg if d.measurement else None,
        "box": d.box.to_dict(),
        "measurement": d.measurement.to_dict() if d.measurement else None,
        "candidates": [c.to_dict() for c in d.candidates],
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
