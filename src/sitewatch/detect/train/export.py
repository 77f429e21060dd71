"""Export a trained detector to the ONNX file sitewatch ships.

ONNX contract (``src/sitewatch/detect/models/sitewatch-det.onnx``, at most 25 MB, opset 17)
-------------------------------------------------------------------------------------------
Input ``image``
    float32 ``[N, 3, H, W]``, RGB values 0..255; H and W multiples of 32; N, H, W dynamic.
    Normalisation happens inside the graph (EfficientNet-Lite: ``(x - 127) / 128``).
Output ``heatmap``
    float32 ``[N, 5, H/4, W/4]``: sigmoid class-centre scores, channels in the order of
    :data:`sitewatch.types.CATEGORIES` (aircraft, helicopter, ship, large-vehicle, small-vehicle).
Output ``geometry``
    float32 ``[N, 6, H/4, W/4]``, per output cell ``(col, row)`` (a cell covers input pixels
    ``[4col, 4col+4) x [4row, 4row+4)``):

    * 0, 1: ``offset_x, offset_y``: the centre of an object peaking in that cell is at input
      pixel ``((col + offset_x) * 4, (row + offset_y) * 4)``;
    * 2, 3: ``length_px, width_px``: box extent along / across the length axis, input pixels,
      positive (the exponential is applied in the graph);
    * 4, 5: ``cos 2θ, sin 2θ`` (unit vector) where θ is the heading of the length axis,
      clockwise from image-up (axis unit vector ``(sin θ, -cos θ)`` in x-right/y-down pixels,
      as :class:`sitewatch.types.OrientedBox`). Decode ``heading = atan2(sin2θ, cos2θ) / 2``
      folded into [0°, 180°).
Metadata (``metadata_props``, all strings)
    ``name`` = "sitewatch-det", ``version``, ``categories`` (JSON list), ``stride`` = "4",
    ``score_threshold`` (recommended, best F1 on the validation split), ``working_gsd_m``
    (metres per pixel the model was trained around; scenes with a finer known GSD should be
    resampled to it; "" if none), ``input_tile`` (recommended tile side, pixels),
    ``train_command``, ``trained_at`` (ISO 8601 UTC); optionally ``score_thresholds`` (JSON
    object category -> threshold) and ``evaluation`` (JSON, the held-out evaluation stored by
    :func:`attach_evaluation`; reports state it and name the model's weak categories).
"""

from __future__ import annotations

import json
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sitewatch.detect.reliability import EVALUATION_KEY
from sitewatch.errors import ModelError
from sitewatch.types import CATEGORIES

log = logging.getLogger(__name__)

OPSET = 17
MAX_BYTES = 25 * 1024 * 1024
MODEL_NAME = "sitewatch-det"
MODEL_VERSION = "1.8.0"
#: Default place of the shipped model inside the package.
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "sitewatch-det.onnx"


def default_metadata(**overrides: Any) -> dict[str, str]:
    """The contract's metadata with defaults, ``overrides`` applied (values turned into strings)."""
    from sitewatch.detect.train.data import WORKING_GSD_M

    meta: dict[str, Any] = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "categories": json.dumps(list(CATEGORIES)),
        "stride": "4",
        "score_threshold": "0.3",
        "working_gsd_m": f"{WORKING_GSD_M}",
        "input_tile": "512",
        "train_command": "",
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    meta.update({k: v for k, v in overrides.items() if v is not None})
    return {k: str(v) for k, v in meta.items()}


def export_onnx(model: Any, out_path: Path, metadata: dict[str, str], *, check_size: int = 512) -> Path:
    """Write ``model`` (a :class:`~sitewatch.detect.train.model.SitewatchNet`) as ONNX with metadata.

    Args:
        model: the network (moved to CPU and put in eval mode here).
        out_path: the .onnx file to write (parent folders are created).
        metadata: ``metadata_props`` key → string (see the module docstring).
        check_size: side, pixels, of a random image used to compare torch and onnxruntime outputs.

    Raises:
        ModelError: the exported graph is over 25 MB or disagrees with torch.
    """
    import onnx
    import torch

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    dummy = torch.rand(1, 3, 256, 256) * 255.0
    tmp = out_path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # The tracer warns about constant folding of strided slices; harmless here.
        warnings.simplefilter("ignore")
        _export(model, dummy, tmp)
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        raise ModelError(f"{out_path}: exported model is {size / 1e6:.1f} MB, over the 25 MB limit")
    err = compare_with_torch(model, tmp, check_size)
    if err > 1e-3:
        tmp.unlink()
        raise ModelError(f"{out_path}: onnxruntime and torch outputs differ by {err:.2e}")
    tmp.replace(out_path)
    log.info(
        "exported %s (%.1f MB, max |onnx - torch| = %.1e at %d px)", out_path, size / 1e6, err, check_size
    )
    return out_path


def _export(model: Any, dummy: Any, path: Path) -> None:
    import torch

    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["heatmap", "geometry"],
        dynamic_axes={
            "image": {0: "N", 2: "H", 3: "W"},
            "heatmap": {0: "N", 2: "h", 3: "w"},
            "geometry": {0: "N", 2: "h", 3: "w"},
        },
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def compare_with_torch(model: Any, onnx_path: Path, size: int, seed: int = 0) -> float:
    """Largest difference between torch and onnxruntime outputs on a random ``size`` image, as
    :func:`restore_error` measures it.

    Headings are compared as angles weighted by the score there: the exported unit vector is the
    head's raw vector normalised, and where a little-trained head leaves that vector near zero
    (no object) its direction is noise in both runtimes.
    """
    return restore_error(model, onnx_path, size, seed)


def load_checkpoint_model(ckpt_path: Path) -> tuple[Any, dict[str, Any]]:
    """The network and the checkpoint dict stored by training.

    Raises:
        ModelError: the file is missing or not a sitewatch checkpoint.
    """
    import torch

    from sitewatch.detect.train.model import SitewatchNet

    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise ModelError(f"{ckpt_path}: checkpoint not found")
    try:
        ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=False)
        model = SitewatchNet(pretrained=False, width=ckpt.get("config", {}).get("width", 64))
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, OSError, EOFError) as e:
        raise ModelError(f"{ckpt_path}: not a sitewatch detector checkpoint ({e})") from e
    return model, ckpt


def average_checkpoints(paths: list[Path], out_path: Path, command: str = "") -> Path:
    """Write the average of the weights of several checkpoints of one run, or of several runs.

    Snapshots taken a few minutes apart late in a run sit around the same minimum; their average
    is smoother than any one of them (stochastic weight averaging), so an export of it depends
    less on the step at which the run happened to stop. Runs continued from the same model stay
    in one basin too: the average of that model and a continuation (a weight interpolation) keeps
    much of what the continuation gained and of what it lost. Floating-point tensors are averaged
    (BatchNorm statistics included: they are frozen in a run started from an exported model);
    integer buffers, the configuration and the metadata (training history included) come from the
    checkpoint with the most steps; averaging several runs, the others' own commands are not
    listed, so the averaging command itself, appended to the history, names every input. The
    result is a checkpoint for :func:`export_checkpoint` or ``sitewatch train export``.

    Args:
        paths: two or more checkpoints of the same architecture.
        out_path: the checkpoint to write (atomically).
        command: the invocation, appended to the training history the model metadata carries.

    Returns:
        ``out_path``.

    Raises:
        ModelError: fewer than two checkpoints, or one that is unreadable or of another shape.
    """
    import torch

    from sitewatch.detect.train.loop import save_checkpoint

    if len(paths) < 2:
        raise ModelError("averaging needs at least two checkpoints")
    ckpts = []
    for path in paths:
        _, ckpt = load_checkpoint_model(path)
        ckpts.append((Path(path), ckpt))
    ckpts.sort(key=lambda pc: int(pc[1].get("step", 0)))
    first_path, first = ckpts[0]
    shapes = {k: tuple(v.shape) for k, v in first["model"].items()}
    for path, ckpt in ckpts[1:]:
        other = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
        if other != shapes:
            raise ModelError(f"{path}: not the architecture of {first_path}; cannot average them")
    latest = ckpts[-1][1]
    state = {}
    for key, value in latest["model"].items():
        if value.is_floating_point():
            stack = torch.stack([c["model"][key].to(torch.float64) for _, c in ckpts])
            state[key] = stack.mean(dim=0).to(value.dtype)
        else:
            state[key] = value.clone()
    meta = dict(latest.get("metadata") or {})
    history = json.loads(meta.get("train_history", "[]"))
    if command:
        history.append(command)
    meta["train_history"] = json.dumps(history)
    meta["train_command"] = " && ".join(history) if history else meta.get("train_command", "")
    out = {
        "model": state,
        "step": latest.get("step", 0),
        "config": latest.get("config", {}),
        "metadata": meta,
        "averaged_from": [{"path": str(p), "step": int(c.get("step", 0))} for p, c in ckpts],
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_path, out)
    log.info(
        "averaged %d checkpoints (steps %d-%d) into %s",
        len(ckpts),
        int(first.get("step", 0)),
        int(latest.get("step", 0)),
        out_path,
    )
    return out_path


def export_checkpoint(ckpt_path: Path, out_path: Path = SHIPPED_MODEL, **metadata: Any) -> Path:
    """Export a training checkpoint; metadata defaults come from the checkpoint when it has them."""
    model, ckpt = load_checkpoint_model(ckpt_path)
    meta = dict(ckpt.get("metadata") or {})
    meta.update({k: v for k, v in metadata.items() if v is not None})
    return export_onnx(model, out_path, default_metadata(**meta))


def read_metadata(onnx_path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


_EVAL_FIELDS = ("objects", "ap50", "precision", "recall", "count_mape")


def evaluation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compact form of a ``sitewatch evaluate --json`` report stored with a model.

    Keeps, per category (and per dataset and category with labelled objects), the number of
    objects, AP50, precision and recall at the model's thresholds and the count error.
    """

    def row(v: dict[str, Any]) -> dict[str, Any]:
        return {k: round(v[k], 4) if isinstance(v.get(k), float) else v.get(k) for k in _EVAL_FIELDS}

    try:
        return {
            "model": report["model"],
            "split": report["split"],
            "images": report["images"],
            "iou_threshold": report.get("iou_threshold"),
            "categories": {c: row(v) for c, v in report["categories"].items()},
            "by_dataset": {
                ds: {c: row(v) for c, v in cats.items() if v.get("objects")}
                for ds, cats in (report.get("by_dataset") or {}).items()
            },
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"not a `sitewatch evaluate --json` report (missing {e})") from None


def attach_evaluation(onnx_path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Store a held-out evaluation of ``onnx_path`` in its metadata (key :data:`EVALUATION_KEY`).

    The report must be of this very model (its ``"model"`` is ``"<name> <version>"`` of the file)
    at the model's own operating thresholds (not a ``--score`` override). The file is rewritten
    atomically; weights and other metadata are untouched.

    Returns:
        The summary stored.

    Raises:
        ModelError: the file is not a readable ONNX model, the report is of another model or at
            other thresholds, or the file cannot be written.
    """
    import onnx

    onnx_path = Path(onnx_path)
    try:
        proto = onnx.load(str(onnx_path))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError, OSError and others
        raise ModelError(f"{onnx_path}: not a readable ONNX model ({e})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    summary = evaluation_summary(report)
    label = f"{meta.get('name', '')} {meta.get('version', '')}"
    if summary["model"] != label:
        from sitewatch.detect.reliability import model_base

        why = (
            " with extra passes: the stored evaluation is of the default passes"
            if model_base(str(summary["model"])) == label
            else ""
        )
        raise ModelError(
            f"{onnx_path}: the evaluation is of {summary['model']!r}, the file holds {label!r}{why}"
        )
    own = _operating_thresholds(meta)
    used = report.get("score_thresholds")
    if not isinstance(used, dict) or any(abs(float(used.get(c, -1.0)) - t) > 1e-6 for c, t in own.items()):
        raise ModelError(
            f"{onnx_path}: the evaluation was not run at the model's own thresholds {own} (got {used})"
        )
    for i, p in enumerate(proto.metadata_props):
        if p.key == EVALUATION_KEY:
            del proto.metadata_props[i]
            break
    entry = proto.metadata_props.add()
    entry.key, entry.value = EVALUATION_KEY, json.dumps(summary, separators=(",", ":"))
    tmp = onnx_path.with_suffix(".tmp.onnx")
    try:
        onnx.save(proto, str(tmp))
        tmp.replace(onnx_path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"{onnx_path}: cannot write the model ({e.strerror or e})") from None
    log.info("stored the %s evaluation (%d images) in %s", summary["split"], summary["images"], onnx_path)
    return summary


def _operating_thresholds(meta: dict[str, str]) -> dict[str, float]:
    """Per category, the score threshold inference uses with this metadata (as ``sitewatch evaluate``)."""
    try:
        pooled = float(meta["score_threshold"])
        per = json.loads(meta.get("score_thresholds") or "{}")
        cats = json.loads(meta["categories"])
        return {c: float(per.get(c, pooled)) for c in cats}
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ModelError(f"model metadata without usable thresholds ({e})") from None


#: Largest difference allowed between a model restored from ONNX and the ONNX model itself.
RESTORE_TOLERANCE = 1e-4


def restore_error(model: Any, onnx_path: Path, size: int, seed: int = 0) -> float:
    """Largest difference between ``model`` and an ONNX file on a random ``size`` image.

    Scores and centre offsets are compared absolutely, lengths and widths relative to their
    size; the heading channels (a unit vector normalised in the graph, whose raw length is tiny
    on noise input) are compared through the heading itself, weighted by the score there.
    """
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    x = (rng.random((1, 3, size, size)) * 255.0).astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    hm_o, geo_o = sess.run(["heatmap", "geometry"], {"image": x})
    with torch.no_grad():
        hm_t, geo_t = (t.numpy() for t in model.eval()(torch.from_numpy(x)))
    score = float(np.abs(hm_o - hm_t).max())
    offset = float(np.abs(geo_o[:, :2] - geo_t[:, :2]).max())
    size_rel = float((np.abs(geo_o[:, 2:4] - geo_t[:, 2:4]) / np.maximum(1.0, np.abs(geo_t[:, 2:4]))).max())
    dtheta = (
        np.abs(np.angle((geo_o[:, 4] + 1j * geo_o[:, 5]) * np.conj(geo_t[:, 4] + 1j * geo_t[:, 5]))) / 2.0
    )
    heading = float((dtheta * hm_t.max(axis=1)).max())
    return max(score, offset, size_rel, heading)


def load_onnx_weights(model: Any, onnx_path: Path, check_size: int = 256) -> dict[str, str]:
    """Restore the weights of an exported detector into ``model`` (a fresh ``SitewatchNet``).

    The exporter folds each BatchNorm into the convolution before it, so the ONNX graph holds one
    weight and one bias per convolution, in the order the network runs them. They are matched to
    the network's convolutions in that order; a folded BatchNorm becomes the identity (unit scale,
    zero mean, unit variance after its epsilon) carrying the folded bias. Training on from such a
    network keeps every BatchNorm in eval mode (:func:`~sitewatch.detect.train.model.freeze_bn`
    with ``everything=True``), so it computes exactly what the ONNX model computes.

    Args:
        model: the network to fill (its architecture must be the exported one).
        onnx_path: the ``.onnx`` file.
        check_size: side of the random image on which both are compared.

    Returns:
        The model's ``metadata_props``.

    Raises:
        ModelError: the file is unreadable, of another architecture, or the restored network
            differs from it by more than :data:`RESTORE_TOLERANCE`.
    """
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: model file not found")
    try:
        proto = onnx.load(str(onnx_path))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError, OSError and others
        raise ModelError(f"{onnx_path}: not a readable ONNX model ({e})") from None
    inits = {t.name: t for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]

    # The network's convolutions in the order they run, each with the BatchNorm that follows it.
    calls: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.BatchNorm2d)
    ]
    model = model.to("cpu").eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    for i, m in enumerate(calls):
        if isinstance(m, nn.Conv2d):
            nxt = calls[i + 1] if i + 1 < len(calls) else None
            pairs.append((m, nxt if isinstance(nxt, nn.BatchNorm2d) else None))
    if len(pairs) != len(convs):
        raise ModelError(
            f"{onnx_path}: not a sitewatch-det of this architecture ({len(convs)} convolutions, expected "
            f"{len(pairs)})"
        )
    with torch.no_grad():
        for (conv, bn), node in zip(pairs, convs, strict=True):
            try:
                w = torch.from_numpy(numpy_helper.to_array(inits[node.input[1]]).astype(np.float32))
                b = (
                    torch.from_numpy(numpy_helper.to_array(inits[node.input[2]]).astype(np.float32))
                    if len(node.input) > 2
                    else None
                )
            except KeyError:
                raise ModelError(
                    f"{onnx_path}: not a sitewatch-det of this architecture (convolution {node.name} has "
                    "no stored weights)"
                ) from None
            if w.shape != conv.weight.shape:
                raise ModelError(
                    f"{onnx_path}: not a sitewatch-det of this architecture (weight {tuple(w.shape)} where "
                    f"{tuple(conv.weight.shape)} is expected)"
                )
            conv.weight.copy_(w)
            bias = b if b is not None else torch.zeros(w.shape[0])
            if bn is None:
                if conv.bias is None:
                    raise ModelError(
                        f"{onnx_path}: not a sitewatch-det of this architecture (unexpected bias)"
                    )
                conv.bias.copy_(bias)
                continue
            if conv.bias is not None:
                conv.bias.zero_()
            assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    err = restore_error(model, onnx_path, check_size)
    if err > RESTORE_TOLERANCE:
        raise ModelError(f"{onnx_path}: the restored network differs from the model by {err:.1e}")
    log.info("restored the weights of %s (max |onnx - torch| = %.1e)", onnx_path, err)
    return {p.key: p.value for p in proto.metadata_props}
