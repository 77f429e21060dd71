"""Small detector models with exact, model-independent answers, for the detect/evaluate tests.

* :func:`write_block_model`: a real ONNX graph following the model contract. Its aircraft score
  is high on every 4x4 output cell whose red channel is bright, and its geometry is constant
  (centre offset 0.5 cells, length ``L``, width ``W``, heading 0), so a bright 4x4 block aligned to
  the 4-pixel grid decodes to exactly one known box.
* :class:`GeometricBackend`: a stand-in backend that finds pure-red objects in each tile image
  and reports the box of the visible part, exactly as a perfect but tile-bound model would. An
  object cut by a tile edge yields a truncated box in that tile, which is what seam merging
  has to sort out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sitewatch.detect.sliced import ModelInfo
from sitewatch.types import CATEGORIES, OrientedBox

BLOCK_LENGTH, BLOCK_WIDTH = 40.0, 20.0


def write_block_model(
    path: Path,
    *,
    version: str = "1.0.0",
    working_gsd_m: str = "",
    input_tile: int = 64,
    score_threshold: float = 0.5,
    fixed: int | None = None,
    score_thresholds: dict[str, float] | str | None = None,
) -> Path:
    """Write the block model (see module docstring) to ``path``.

    ``score_thresholds`` (a dict, or raw text for malformed cases) becomes the metadata entry of
    the same name; the aircraft score of a cell is ``sigmoid(0.1 * (mean red - 128))``.
    """
    k = 0.1  # score = sigmoid(k * (mean red of the cell - 128))
    w_hm = np.zeros((5, 3, 4, 4), dtype=np.float32)
    w_hm[0, 0] = k / 16.0
    b_hm = np.array([-k * 128.0] + [-30.0] * 4, dtype=np.float32)
    w_geo = np.zeros((6, 3, 4, 4), dtype=np.float32)
    b_geo = np.array([0.5, 0.5, BLOCK_LENGTH, BLOCK_WIDTH, 1.0, 0.0], dtype=np.float32)
    dims: list = ["N", 3, fixed, fixed] if fixed else ["N", 3, "H", "W"]
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w_hm", "b_hm"], ["logits"], kernel_shape=[4, 4], strides=[4, 4]),
            helper.make_node("Sigmoid", ["logits"], ["heatmap"]),
            helper.make_node("Conv", ["image", "w_geo", "b_geo"], ["geometry"], kernel_shape=[4, 4], strides=[4, 4]),
        ],
        "block",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["N", 5, "h", "w"]),
            helper.make_tensor_value_info("geometry", TensorProto.FLOAT, ["N", 6, "h", "w"]),
        ],
        initializer=[
            numpy_helper.from_array(w_hm, "w_hm"),
            numpy_helper.from_array(b_hm, "b_hm"),
            numpy_helper.from_array(w_geo, "w_geo"),
            numpy_helper.from_array(b_geo, "b_geo"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "name": "block-test",
        "version": version,
        "categories": json.dumps(list(CATEGORIES)),
        "stride": "4",
        "score_threshold": str(score_threshold),
        "working_gsd_m": working_gsd_m,
        "input_tile": str(input_tile),
    }
    if score_thresholds is not None:
        meta["score_thresholds"] = score_thresholds if isinstance(score_thresholds, str) else json.dumps(score_thresholds)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def paint_box(rgb: np.ndarray, box: OrientedBox) -> None:
    """Fill ``box`` (pixels) in pure red on ``rgb`` (in place)."""
    # fillPoly puts pixel centres on integers; our frame puts them on half-integers.
    pts = np.round((box.corners() - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(rgb, [pts], (255, 0, 0), lineType=cv2.LINE_8, shift=4)


class GeometricBackend:
    """A backend that reports the box of every pure-red blob in each tile (see module docstring)."""

    def __init__(self, input_tile: int = 128, working_gsd_m: float | None = None, score: float = 0.9) -> None:
        self.info = ModelInfo(name="geometric", version="test", input_tile=input_tile, working_gsd_m=working_gsd_m, score_threshold=0.5)
        self.score = score
        self.calls = 0

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        n, _, h, w = images.shape
        s = self.info.stride
        heat = np.zeros((n, 5, h // s, w // s), dtype=np.float32)
        geo = np.zeros((n, 6, h // s, w // s), dtype=np.float32)
        for i in range(n):
            red = ((images[i, 0] > 200) & (images[i, 1] < 50)).astype(np.uint8)
            count, labels = cv2.connectedComponents(red, connectivity=8)
            for lab in range(1, count):
                ys, xs = np.nonzero(labels == lab)
                pts = np.stack([xs + 0.5, ys + 0.5], axis=1).astype(np.float32)
                (cx, cy), (a, b), ang = cv2.minAreaRect(pts)
                # Pixel centres span one pixel less than the painted area.
                corners = cv2.boxPoints(((cx, cy), (a + 1.0, b + 1.0), ang))
                box = OrientedBox.from_corners(corners)
                col, row = min(int(box.cx // s), w // s - 1), min(int(box.cy // s), h // s - 1)
                t = math.radians(2 * box.heading_deg)
                heat[i, 0, row, col] = self.score
                geo[i, :, row, col] = [box.cx / s - col, box.cy / s - row, box.length, box.width, math.cos(t), math.sin(t)]
        return heat, geo


class VehicleBackend(GeometricBackend):
    """Reports every red blob as a small vehicle."""

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heat, geo = super().run(images)
        out = np.zeros_like(heat)
        out[:, CATEGORIES.index("small-vehicle")] = heat[:, 0]
        return out, geo
