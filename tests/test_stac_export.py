"""STAC export: a site's Collection and one Item per pass, validated offline against JSON Schemas."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pystac
import pytest
import shapely
from pystac.validation import JsonSchemaSTACValidator, set_validator, validate_dict
from tests.test_export import _located_corners, _passes, _same_ring

from sitewatch.errors import ReportError
from sitewatch.report.exports import export_passes
from sitewatch.report.stac import LABEL_SCHEMA_URI

SCHEMAS = Path(__file__).parent / "data" / "stac-schemas"


@pytest.fixture()
def offline_validator(monkeypatch: pytest.MonkeyPatch) -> Iterator[JsonSchemaSTACValidator]:
    """pystac's JSON-schema validator with the vendored schemas; any schema fetch over HTTP fails the test."""

    def no_network(self, href: str) -> str:  # noqa: ANN001
        if href.startswith(("http://", "https://")):
            raise AssertionError(f"schema fetched from the network: {href}")
        return Path(href).read_text()

    monkeypatch.setattr(pystac.stac_io.DefaultStacIO, "read_text_from_href", no_network)
    validator = JsonSchemaSTACValidator()
    validator.schema_cache[LABEL_SCHEMA_URI] = json.loads((SCHEMAS / "label-v1.0.0.json").read_text())
    set_validator(validator)
    yield validator
    set_validator(JsonSchemaSTACValidator())


def test_stac_export_validates_offline(tmp_path: Path, offline_validator: JsonSchemaSTACValidator) -> None:
    passes = _passes()
    out = export_passes(passes, None, "stac", tmp_path / "stac")
    assert out == tmp_path / "stac"
    files = sorted(out.rglob("*.json"))
    assert [f.relative_to(out).as_posix() for f in files] == ["base-pass-1/base-pass-1.json", "base-pass-2/base-pass-2.json", "collection.json"]
    for f in files:  # the files as written, against the STAC core and label schemas
        uris = validate_dict(json.loads(f.read_text()), href=str(f))
        assert any(u.endswith("collection.json" if f.name == "collection.json" else "item.json") for u in uris)
        assert f.name == "collection.json" or LABEL_SCHEMA_URI in uris
    broken = json.loads(files[0].read_text())
    del broken["properties"]["label:type"]  # the validator is not a rubber stamp
    with pytest.raises(pystac.errors.STACValidationError, match="label:type"):
        validate_dict(broken)
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    assert collection.id == "base"
    items = sorted(collection.get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == ["base-pass-1", "base-pass-2"]  # the pixel-space pass cannot be an Item
    for item in items:
        assert item.properties["label:type"] == "vector" and item.properties["label:tasks"] == ["detection"]
        assert item.assets["detections"].roles == ["labels", "labels-vector"]
        assert item.assets["scene"].roles == ["data"] and item.common_metadata.gsd == 0.5
    assert items[0].datetime.isoformat() == "2024-01-02T08:30:00+00:00"
    assert "SIMULATED" in items[0].properties["title"]
    counts = {c["name"]: c["count"] for c in items[1].properties["label:overviews"][0]["counts"]}
    assert counts["aircraft"] == 1 and counts["helicopter"] == 1 and counts["ship"] == 0
    # the label asset: the pass's detections, at their known lon/lat
    labels = gpd.read_file(items[1].assets["detections"].get_absolute_href())
    assert labels.crs.to_epsg() == 4326 and sorted(labels["detection_id"]) == [3, 4]
    corners = _located_corners(passes)
    for did in (3, 4):
        _same_ring(labels[labels["detection_id"] == did].geometry.iloc[0], corners[did], 6e-8)
    geom = shapely.geometry.shape(items[0].geometry)
    assert geom.equals_exact(shapely.from_wkt(passes[0].footprint_wkt), 1e-9)
    # self-contained: links are relative, so the folder can move
    raw = json.loads((out / "collection.json").read_text())
    assert all(not link["href"].startswith("/") for link in raw["links"])


def test_stac_export_refuses_and_replaces(tmp_path: Path, offline_validator: JsonSchemaSTACValidator) -> None:
    passes = _passes()
    out = tmp_path / "stac"
    export_passes(passes, None, "stac", out)
    with pytest.raises(ReportError, match="exists; use --overwrite"):
        export_passes(passes, None, "stac", out)
    export_passes(passes[:1], None, "stac", out, overwrite=True)
    assert sorted(os.listdir(out)) == ["base-pass-1", "collection.json"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ReportError, match="not a STAC export"):
        export_passes(passes, None, "stac", tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    with pytest.raises(ReportError, match="no pass has an acquisition time"):
        export_passes(passes[2:], None, "stac", tmp_path / "none")
    with pytest.raises(ReportError, match="writes a folder"):
        export_passes(passes, None, "stac", tmp_path / "x.geojson")
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".")) == []  # no temporary folders left
