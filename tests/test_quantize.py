"""Static int8 quantisation (sitewatch train quantize) on a model with exact answers."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from detect_support import write_block_model
from sitewatch.detect.onnx import OnnxDetector
from sitewatch.detect.quantize import quantize_model
from sitewatch.errors import ModelError
from sitewatch.imagery import open_scene

BLOCKS = [(40, 24), (100, 80), (152, 148)]


def _scene_rgb() -> np.ndarray:
    rgb = np.zeros((180, 200, 3), np.uint8)
    rgb[..., 1] = 60
    for x, y in BLOCKS:
        rgb[y : y + 4, x : x + 4, 0] = 255
    return rgb


def _with_stem(path: Path) -> Path:
    """The block model behind a 1x1 identity convolution (a "backbone" to quantise; the heads stay float)."""
    m = onnx.load(str(path))
    for node in m.graph.node:
        node.input[0] = "features" if node.input[0] == "image" else node.input[0]
    m.graph.initializer.append(numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "w_stem"))
    m.graph.node.insert(0, helper.make_node("Conv", ["image", "w_stem"], ["features"], kernel_shape=[1, 1]))
    onnx.save(m, str(path))
    return path


def test_int8_twin_keeps_metadata_and_finds_the_same_boxes(tmp_path: Path) -> None:
    import cv2

    src = _with_stem(write_block_model(tmp_path / "block.onnx", score_thresholds={"aircraft": 0.5}))
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 256, (3, 64, 64)).astype(np.float32) for _ in range(16)]
    tiles += [_scene_rgb()[:64, :64].transpose(2, 0, 1).astype(np.float32)]
    out = quantize_model(src, tmp_path / "block-int8.onnx", tiles, count=16)
    q = onnx.load(str(out))
    meta = {p.key: p.value for p in q.metadata_props}
    assert meta["precision"] == "int8" and json.loads(meta["quantization"])["calibration_tiles"] == 16
    assert meta["score_thresholds"] == json.dumps({"aircraft": 0.5})  # the rest of the metadata is kept
    assert (meta["name"], meta["version"]) == ("block-test-int8", "1.0.0")  # a twin with its own name
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("QuantizeLinear") >= 2 and "DequantizeLinear" in ops  # the stem really is quantised (QDQ)
    assert json.loads(meta["quantization"])["float_nodes"] == ["conv_3", "sigmoid_2", "conv_1"]  # the heads are not
    png = tmp_path / "shot.png"
    cv2.imwrite(str(png), cv2.cvtColor(_scene_rgb(), cv2.COLOR_RGB2BGR))
    found = {}
    for name, path in (("fp32", src), ("int8", out)):
        with open_scene(png, gsd_m=0.5) as scene:
            found[name] = sorted((round(d.box.cx), round(d.box.cy), d.category) for d in OnnxDetector(path).detect(scene))
    assert found["int8"] == found["fp32"] == sorted((x + 2, y + 2, "aircraft") for x, y in BLOCKS)


def test_int8_twin_drops_the_float_models_evaluation(tmp_path: Path) -> None:
    from sitewatch.detect.reliability import EVALUATION_KEY

    src = write_block_model(tmp_path / "block.onnx")
    m = onnx.load(str(src))
    m.metadata_props.add(key=EVALUATION_KEY, value=json.dumps({"model": "block-test 1.0.0", "categories": {}}))
    onnx.save(m, str(src))
    tiles = [np.random.default_rng(k).integers(0, 256, (3, 64, 64)).astype(np.float32) for k in range(8)]
    twin = quantize_model(src, tmp_path / "twin.onnx", tiles, count=8)
    again = quantize_model(twin, tmp_path / "again.onnx", tiles, count=8)  # an int8 model is not renamed twice
    names = [{p.key: p.value for p in onnx.load(str(path)).metadata_props} for path in (twin, again)]
    assert [meta["name"] for meta in names] == ["block-test-int8", "block-test-int8"]
    assert all(EVALUATION_KEY not in meta for meta in names)


def test_float_prefixes_keep_named_nodes_in_float(tmp_path: Path) -> None:
    src = _with_stem(write_block_model(tmp_path / "block.onnx"))
    tiles = [np.random.default_rng(k).integers(0, 256, (3, 64, 64)).astype(np.float32) for k in range(8)]
    quantised = quantize_model(src, tmp_path / "all.onnx", tiles, count=8, float_prefixes=())
    stem_float = quantize_model(src, tmp_path / "stem.onnx", tiles, count=8, float_prefixes=("conv_0",))
    nodes = {}
    for name, path in (("all", quantised), ("stem", stem_float)):
        q = onnx.load(str(path))
        meta = {p.key: p.value for p in q.metadata_props}
        nodes[name] = (json.loads(meta["quantization"])["float_nodes"], [n.op_type for n in q.graph.node])
    assert "conv_0" not in nodes["all"][0] and nodes["stem"][0][-1] == "conv_0"
    # the stem's input and weights are no longer quantised: fewer QDQ pairs
    assert nodes["stem"][1].count("QuantizeLinear") < nodes["all"][1].count("QuantizeLinear")


def test_no_tiles_is_a_model_error(tmp_path: Path) -> None:
    src = write_block_model(tmp_path / "block.onnx")
    with pytest.raises(ModelError, match=r"block\.onnx: no calibration tiles"):
        quantize_model(src, tmp_path / "q.onnx", [])


def test_cli_calibrates_on_the_library_default_number_of_tiles() -> None:
    from sitewatch.cli.main import cli
    from sitewatch.detect.quantize import CALIBRATION_TILES

    train = cli.get_command(click.Context(cli), "train")
    quantize = train.get_command(click.Context(train), "quantize")
    [tiles] = [p for p in quantize.params if p.name == "count"]
    assert tiles.default == CALIBRATION_TILES
