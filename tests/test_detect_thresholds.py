"""Per-category score thresholds: model metadata, decoding, the detector and evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from detect_support import write_block_model
from sitewatch.cli.main import main
from sitewatch.detect.decode import decode
from sitewatch.detect.evaluate import Evaluator
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.dota import LabelledImage, LabelledObject
from sitewatch.errors import ModelError
from sitewatch.imagery.base import ArrayScene
from sitewatch.types import Detection, OrientedBox


def _score(red: int) -> float:
    """The block model's aircraft score for a 4x4 block of this red value."""
    return 1.0 / (1.0 + math.exp(-0.1 * (red - 128)))


#: Blocks (x, y, red): scores 0.961, 0.769 and 0.599.
BLOCKS = [(40, 40, 160), (120, 40, 140), (80, 120, 132)]


def _scene() -> ArrayScene:
    rgb = np.zeros((192, 192, 3), np.uint8)
    for x, y, red in BLOCKS:
        rgb[y : y + 4, x : x + 4, 0] = red
    return ArrayScene(rgb, "blocks")


def _found(det: OnnxDetector) -> list[tuple[float, float]]:
    return sorted((d.box.cx, d.box.cy) for d in det.detect(_scene()))


def test_decode_per_channel_thresholds() -> None:
    hm = np.zeros((1, 5, 8, 8), np.float32)
    hm[0, 0, 1, 1] = 0.5  # aircraft
    hm[0, 2, 5, 5] = 0.3  # ship
    hm[0, 4, 3, 6] = 0.3  # small vehicle
    geo = np.zeros((1, 6, 8, 8), np.float32)
    b = decode(hm, geo, score_threshold=[0.6, 0.6, 0.25, 0.6, 0.35])
    assert b.category.tolist() == [2]
    b = decode(hm, geo, score_threshold=np.array([0.5, 1.0, 1.0, 1.0, 0.3]))
    assert sorted(b.category.tolist()) == [0, 4]
    with pytest.raises(ValueError, match="3 score thresholds for 5"):
        decode(hm, geo, score_threshold=[0.1, 0.2, 0.3])


def test_detector_uses_model_per_category_thresholds(tmp_path: Path) -> None:
    assert [round(_score(r), 3) for _, _, r in BLOCKS] == [0.961, 0.769, 0.599]
    centre = {red: (x + 2.0, y + 2.0) for x, y, red in BLOCKS}
    model = write_block_model(tmp_path / "m.onnx", score_threshold=0.5, score_thresholds={"aircraft": 0.7, "ship": 0.2})
    det = OnnxDetector(model, tile_px=64, overlap_px=16)
    assert det.info.score_thresholds == {"aircraft": 0.7, "ship": 0.2}
    # Aircraft at its own 0.7; helicopter and vehicles, not listed, at the common 0.5.
    assert det.score_thresholds == {"aircraft": 0.7, "helicopter": 0.5, "ship": 0.2, "large-vehicle": 0.5, "small-vehicle": 0.5}
    assert det.score_threshold == 0.2
    assert _found(det) == sorted([centre[160], centre[140]])
    # An explicit threshold applies to every category, the model's own ones included.
    assert _found(OnnxDetector(model, tile_px=64, overlap_px=16, score_threshold=0.8)) == [centre[160]]
    assert _found(OnnxDetector(model, tile_px=64, overlap_px=16, score_threshold=0.5)) == sorted(centre.values())
    det.score_threshold = 0.9
    assert set(det.score_thresholds.values()) == {0.9} and _found(det) == [centre[160]]
    # Without the entry the common threshold holds for all.
    plain = OnnxDetector(write_block_model(tmp_path / "p.onnx", score_threshold=0.5), tile_px=64, overlap_px=16)
    assert plain.info.score_thresholds == {} and _found(plain) == sorted(centre.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"tank": 0.3}', "does not have: \\['tank'\\]"),
        ('{"ship": 1.5}', "outside \\[0, 1\\]"),
        ("[0.3]", "not a JSON object"),
        ("{ship", "bad model metadata"),
    ],
)
def test_bad_per_category_thresholds_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = write_block_model(tmp_path / "bad.onnx", score_thresholds=text)
    with pytest.raises(ModelError, match=message) as e:
        OnnxDetector(path)
    assert str(path) in str(e.value)


def _obj(cx: float, cy: float, category: str) -> LabelledObject:
    box = OrientedBox.make(cx, cy, 20, 10, 0)
    return LabelledObject(box, category, category, False, tuple(map(tuple, box.corners())))


def test_evaluator_per_category_thresholds_and_pooled_vehicles() -> None:
    objs = [_obj(50, 50, "large-vehicle"), _obj(150, 50, "small-vehicle"), _obj(250, 50, "small-vehicle")]
    image = LabelledImage(Path("v.png"), "x", None, objs)
    dets = [
        Detection(box=objs[0].box, category="large-vehicle", score=0.3),  # TP, above large 0.25
        Detection(box=objs[1].box, category="small-vehicle", score=0.45),  # TP, below small 0.5
        Detection(box=OrientedBox.make(400, 50, 20, 10, 0), category="small-vehicle", score=0.9),  # FP
        Detection(box=OrientedBox.make(500, 50, 20, 10, 0), category="large-vehicle", score=0.2),  # FP below 0.25
    ]
    ev = Evaluator(0.5, score_thresholds={"large-vehicle": 0.25})
    ev.add(image, dets, ["large-vehicle", "small-vehicle"])
    r = ev.result()
    assert r.score_thresholds["large-vehicle"] == 0.25 and r.score_thresholds["small-vehicle"] == 0.5
    large, small = r.categories["large-vehicle"], r.categories["small-vehicle"]
    assert (large.tp, large.fp, large.fn, large.precision, large.recall) == (1, 0, 0, 1.0, 1.0)
    assert (small.tp, small.fp, small.fn, small.precision, small.recall) == (0, 1, 2, 0.0, 0.0)
    assert large.ap50 == 1.0
    # Small: 0.9 FP, 0.45 TP with 2 objects → precision 1/2 at recall 1/2 → AP 0.25.
    assert small.ap50 == pytest.approx(0.25)
    v = r.pooled["vehicle"]
    assert (v.objects, v.tp, v.fp, v.fn) == (3, 1, 1, 2)
    # Pooled ranking 0.9 FP, 0.45 TP, 0.3 TP, 0.2 FP over 3 objects: precision 1/2 then 2/3 at
    # recall 1/3 and 2/3; interpolated (best precision at higher recall) AP = 1/3 * 2/3 + 1/3 * 2/3.
    assert v.ap50 == pytest.approx(4 / 9)
    # Counts at the thresholds: large 1 vs 1 → 0 %, small 1 vs 2 → 50 %.
    assert (large.count_mape, small.count_mape, v.count_mape) == (0.0, 50.0, 25.0)


def test_evaluate_cli_reports_at_shipped_per_category_thresholds(tmp_path: Path, capsys) -> None:
    import cv2

    root = tmp_path / "synthetic"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rgb = np.zeros((192, 192, 3), np.uint8)
    lines = []
    for x, y, red in BLOCKS:
        rgb[y : y + 4, x : x + 4, 0] = red
        cx, cy = x + 2, y + 2
        lines.append(f"{cx - 10} {cy - 20} {cx + 10} {cy - 20} {cx + 10} {cy + 20} {cx - 10} {cy + 20} aircraft 0")
    cv2.imwrite(str(root / "images" / "a.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (root / "labels" / "a.txt").write_text("imagesource:test\ngsd:null\n" + "\n".join(lines) + "\n")
    model = write_block_model(tmp_path / "m.onnx", score_threshold=0.5, score_thresholds={"aircraft": 0.7})
    main(["evaluate", str(root), "--model", str(model), "--split", "all", "--json"])
    r = json.loads(capsys.readouterr().out)
    c = r["categories"]["aircraft"]
    assert r["score_thresholds"]["aircraft"] == 0.7 and r["score_thresholds"]["ship"] == 0.5
    # AP sees all three (the detector runs at the 0.05 floor); the operating point is 0.7: 2 of 3.
    assert c["ap50"] == pytest.approx(1.0)
    assert (c["tp"], c["fp"], c["fn"]) == (2, 0, 1)
    main(["evaluate", str(root), "--model", str(model), "--split", "all", "--json", "--score", "0.5"])
    r = json.loads(capsys.readouterr().out)
    assert r["categories"]["aircraft"]["tp"] == 3 and set(r["score_thresholds"].values()) == {0.5}
