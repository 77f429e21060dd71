"""Static int8 quantisation of a detector model (ONNX Runtime QDQ), calibrated on its own input tiles.

The calibration inputs are the tiles the detector itself feeds the model: training images of every
labelled dataset are run through :class:`~sitewatch.detect.onnx.OnnxDetector` (so each tile is
resampled to the model's working GSD exactly as at inference) and a seeded sample of those tiles
calibrates the activation ranges (min/max, in strides to bound memory). Weights are int8 per
output channel, activations uint8. The last convolution before each output (centre scores,
offsets, log-sizes, angles) and the arithmetic after it stay in float (:func:`float_tail`):
quantising them shifts every centre by a fraction of a cell and costs small-vehicle and ship AP
far beyond the 0.01 allowed (measured; see the model card). The high-resolution start of the
backbone (:data:`FLOAT_PREFIXES`: the stem and the blocks before stride 16) stays in float too:
quantised, it cost VEDAI small vehicles 0.04 AP50 and SIMD aircraft 0.05 (docs/detect.md).

Example:
    >>> tiles = calibration_tiles("sitewatch-det.onnx", Path("../shared/data"))  # doctest: +SKIP
    >>> quantize_model("sitewatch-det.onnx", "sitewatch-det.int8.onnx", tiles)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.detect.reliability import EVALUATION_KEY
from sitewatch.errors import ModelError
from sitewatch.output import atomic_output

log = logging.getLogger(__name__)

#: Calibration tiles used, and how many go through the model at once while ranges are collected.
#: 256 tiles of 8 images per dataset: with 64 tiles of 3 images per dataset the twin of 1.5.0 lost
#: 0.014 AP50 on FAIR1M ships; with these none of its categories lost more than 0.007 (docs/detect.md).
CALIBRATION_TILES = 256
CALIBRATION_STRIDE = 8
#: Nodes kept in float by name prefix: the stem and the stride-2/4/8 blocks of the EfficientNet-B0
#: backbone (small objects' detail lives there; these layers are ~15 % of the int8 model's time).
FLOAT_PREFIXES: tuple[str, ...] = ("/_conv_stem/", *(f"/_blocks.{i}/" for i in range(6)))
#: Training images per dataset whose tiles are sampled.
IMAGES_PER_DATASET = 8
#: Appended to the float model's name to name its int8 twin (``sitewatch-det`` → ``sitewatch-det-int8``).
INT8_SUFFIX = "-int8"


def calibration_tiles(
    model: str | Path, data: Path, *, seed: int = 0, images_per_dataset: int = IMAGES_PER_DATASET
) -> list[np.ndarray]:
    """Model input tiles ``float32 [3, H, W]`` from training images of every labelled dataset under ``data``.

    Raises:
        SceneError: ``data`` holds no labelled dataset.
    """
    from sitewatch.detect.evaluate import dataset_roots, iter_labelled
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.imagery import open_scene

    det = OnnxDetector(model)
    inner = det.backend
    tiles: list[np.ndarray] = []

    class Recorder:
        info = inner.info

        def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            tiles.extend(np.array(t) for t in images)
            return inner.run(images)

    det.backend = Recorder()
    rng = np.random.default_rng(seed)
    for root in dataset_roots(data):
        images = [im for im, _ in iter_labelled(root, "train")]
        if not images:
            continue
        for k in rng.choice(len(images), size=min(images_per_dataset, len(images)), replace=False):
            im = images[int(k)]
            with open_scene(im.image_path, gsd_m=im.gsd_m) as scene:
                det.detect(scene, gsd_m=im.gsd_m)
    log.info("calibration: %d tiles from %d datasets", len(tiles), len(dataset_roots(data)))
    return tiles


def float_tail(graph: Any) -> list[str]:
    """Names of the nodes from each graph output back to (and including) the last convolution before it."""
    producers = {out: node for node in graph.node for out in node.output}
    tail: list[str] = []
    stack = [o.name for o in graph.output]
    while stack:
        node = producers.get(stack.pop())
        if node is None or node.name in tail:
            continue
        tail.append(node.name)
        if node.op_type != "Conv":
            stack.extend(node.input)
    return tail


def quantize_model(
    model: str | Path,
    out: str | Path,
    tiles: Sequence[np.ndarray],
    *,
    count: int = CALIBRATION_TILES,
    seed: int = 0,
    float_prefixes: tuple[str, ...] = FLOAT_PREFIXES,
) -> Path:
    """Write the int8 (QDQ) twin of ``model`` to ``out``, calibrated on ``count`` of ``tiles``.

    Nodes whose names start with one of ``float_prefixes`` stay in float, as does :func:`float_tail`.
    The model's metadata (categories, thresholds...) is kept, except that the twin is named
    ``<name>-int8`` (same version; passes and reports tell the two apart) and carries no evaluation
    of its own until one is attached (``sitewatch train attach-evaluation``); ``precision`` says
    ``int8`` and ``quantization`` how it was made.

    Raises:
        ModelError: no calibration tiles, or ONNX Runtime cannot quantise the model.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not tiles:
        raise ModelError(f"{model}: no calibration tiles to quantise with")
    rng = np.random.default_rng(seed)
    n = min(count, len(tiles)) // CALIBRATION_STRIDE * CALIBRATION_STRIDE or min(count, len(tiles))
    chosen = [tiles[int(i)] for i in rng.choice(len(tiles), size=n, replace=False)]
    stride = CALIBRATION_STRIDE if n % CALIBRATION_STRIDE == 0 else n

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(chosen)

        def __len__(self) -> int:
            return len(chosen)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(chosen[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            t = next(self._it, None)
            return None if t is None else {"image": t[None]}

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(model), str(pre), skip_symbolic_shape=True)
            m = onnx.load(str(pre))
            for i, node in enumerate(m.graph.node):  # exclusion goes by name
                node.name = node.name or f"{node.op_type.lower()}_{i}"
            onnx.save(m, str(pre))
            keep_float = float_tail(m.graph)
            keep_float += [
                n.name for n in m.graph.node if n.name.startswith(float_prefixes) and n.name not in keep_float
            ]
            quantize_static(
                str(pre), str(Path(tmp) / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                nodes_to_exclude=keep_float, calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibStridedMinMax": stride},
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises many kinds; one line naming the model
            raise ModelError(f"{model}: cannot be quantised: {type(e).__name__}: {e}") from None
        q = onnx.load(str(Path(tmp) / "q.onnx"))
        meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
        meta["precision"] = "int8"
        if not meta.get("name", "").endswith(INT8_SUFFIX):
            meta["name"] = meta.get("name", "model") + INT8_SUFFIX
        meta.pop(EVALUATION_KEY, None)  # measured on the float model, not on this one
        meta["quantization"] = json.dumps({
            "method": "onnxruntime static QDQ, weights int8 per channel, activations uint8 (min/max)",
            "calibration_tiles": n, "float_nodes": keep_float, "seed": seed,
        })  # fmt: skip
        del q.metadata_props[:]
        for k, v in meta.items():
            q.metadata_props.add(key=k, value=v)
        with atomic_output(out, overwrite=True, what="model") as part:  # the caller decides on --overwrite
            onnx.save(q, str(part))
    log.info("wrote %s (%d calibration tiles, %d nodes kept in float)", out, n, len(keep_float))
    return out
