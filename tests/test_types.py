import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sitewatch.dota import iter_dataset
from sitewatch.records import (
    FLAT_SCHEMA_PATH,
    FlatDetectionRecord,
    flat_record,
    flat_record_schema,
    from_flat_record,
    label_fields,
)
from sitewatch.types import Candidate, Detection, Measurement, OrientedBox


@pytest.mark.parametrize("heading", [0.0, 30.0, 89.0, 135.0, 179.0])
def test_box_corners_round_trip(heading: float) -> None:
    box = OrientedBox.make(50.0, 40.0, 30.0, 8.0, heading)
    back = OrientedBox.from_corners(box.corners())
    assert back.cx == pytest.approx(50.0)
    assert back.length == pytest.approx(30.0)
    assert back.width == pytest.approx(8.0)
    d = (back.heading_deg - heading + 90) % 180 - 90
    assert abs(d) < 1e-6


def test_heading_is_clockwise_from_up() -> None:
    # A box whose length runs left-right points east: 90 deg clockwise from up.
    box = OrientedBox.from_corners([[0, 0], [10, 0], [10, 4], [0, 4]])
    assert box.heading_deg == pytest.approx(90.0)
    assert box.axis[0] == pytest.approx(1.0)
    assert math.isclose(box.envelope()[2], 10.0)


def test_make_swaps_sides() -> None:
    box = OrientedBox.make(0, 0, 4, 10, 0)
    assert (box.length, box.width, box.heading_deg) == (10, 4, 90)


def test_detection_round_trip() -> None:
    det = Detection(
        OrientedBox.make(10.5, 20.25, 30, 12, 45),
        "aircraft",
        0.9,
        footprint=((35.0, 35.4), (35.1, 35.4), (35.1, 35.5), (35.0, 35.5)),
        measurement=Measurement(15.0, 6.0, 0.5, 0.4, 45.0, 2.0, 0.5),
        candidates=(Candidate("su-24", "Su-24", "bomber", 0.6),),
        id=7,
    )
    back = Detection.from_dict(det.to_dict())
    assert back.to_dict() == det.to_dict()
    assert np.allclose(back.box.corners(), det.box.corners(), atol=0.02)


@pytest.mark.parametrize("identified", [True, False])
def test_flat_record_round_trip(identified: bool) -> None:
    """The flat record (store rows, exports, API properties) gives back the detection, full precision."""
    det = Detection(OrientedBox.make(10.123456789, 20.25, 30, 12, 45.0001), "aircraft", 0.912345678, id=7)
    if identified:
        det = replace(det, footprint=((35.0, 35.4), (35.1, 35.4), (35.1, 35.5), (35.0, 35.5)),
                      measurement=Measurement(15.01234, 6.0, 0.5, 0.4, 45.0, 2.0, 0.5),
                      candidates=(Candidate("su-24", "Su-24", "bomber", 0.6),))  # fmt: skip
    record = flat_record(det)
    assert (record["type_name"], record["gsd_m"]) == (("Su-24", 0.5) if identified else (None, None))
    assert from_flat_record(record, det.footprint) == det
    FlatDetectionRecord.of(det)  # the names and values the schema publishes


def test_flat_record_schema_is_published() -> None:
    import jsonschema

    published = json.loads((Path(__file__).resolve().parents[1] / FLAT_SCHEMA_PATH).read_text())
    assert published == flat_record_schema(), f"regenerate: python -m sitewatch.records flat > {FLAT_SCHEMA_PATH}"
    det = Detection(OrientedBox.make(10, 20, 30, 12, 45), "ship", 0.5, candidates=(Candidate("x", "X", "r", 0.9),))
    record = flat_record(det) | label_fields(det)
    jsonschema.Draft202012Validator(published).validate(record)
    with pytest.raises(jsonschema.ValidationError):  # not a rubber stamp
        jsonschema.Draft202012Validator(published).validate(record | {"heading_px_deg": 200.0})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(published).validate(record | {"cx": 1.0})


def test_unknown_category_rejected() -> None:
    with pytest.raises(ValueError, match="unknown category"):
        Detection(OrientedBox.make(0, 0, 1, 1, 0), "tank", 0.5)


def test_dota_reader_on_real_data(data_dir) -> None:
    images = list(iter_dataset(data_dir / "dota"))
    assert len(images) == 21
    heli = sum(im.counts(include_difficult=True)["helicopter"] for im in images)
    assert heli == 9
    airbus = next(iter_dataset(data_dir / "airbus-pleiades"))
    assert airbus.axis_aligned and airbus.gsd_m == 0.5
