"""ONNX Runtime backend and the default detector built on it.

The model contract (checked on load, see docs/detect.md): input ``image`` float32
``[N,3,H,W]`` RGB 0..255 (H, W multiples of 32); outputs ``heatmap`` ``[N,C,H/4,W/4]`` and
``geometry`` ``[N,6,H/4,W/4]``; ``metadata_props`` name, version, categories (JSON list),
stride, score_threshold, working_gsd_m ("" if none), input_tile; optional score_thresholds
(JSON object category → threshold; categories it does not list use score_threshold).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sitewatch.detect.registry import models
from sitewatch.detect.sliced import ModelInfo, SlicedDetector
from sitewatch.errors import ModelError
from sitewatch.settings import Settings
from sitewatch.types import CATEGORIES

log = logging.getLogger(__name__)


def available_providers() -> list[str]:
    """ONNX Runtime execution providers usable here (e.g. ``CUDAExecutionProvider``), best first."""
    return [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]


def _providers(requested: list[str] | None) -> list[str]:
    if not requested:
        return ["CPUExecutionProvider"]
    available = available_providers()
    if requested == ["auto"]:
        return available
    names = [
        p
        if p.endswith("ExecutionProvider")
        else f"{p.upper() if p.lower() in ('cpu', 'cuda') else p}ExecutionProvider"
        for p in requested
    ]
    missing = [p for p in names if p not in available]
    if missing:
        raise ModelError(
            f"execution provider {', '.join(missing)} not available; available: {', '.join(available)}"
        )
    return names + (["CPUExecutionProvider"] if "CPUExecutionProvider" not in names else [])


def _info_from_metadata(path: Path, meta: dict[str, str], input_shape: list) -> ModelInfo:
    try:
        categories = tuple(json.loads(meta["categories"])) if meta.get("categories") else CATEGORIES
        working = meta.get("working_gsd_m", "")
        fixed = None
        h, w = input_shape[2], input_shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            fixed = (h, w)
        info = ModelInfo(
            name=meta.get("name") or path.stem,
            version=meta.get("version") or "unknown",
            categories=categories,
            stride=int(meta.get("stride") or 4),
            score_threshold=float(meta.get("score_threshold") or 0.3),
            working_gsd_m=float(working) if working not in ("", None, "null", "None") else None,
            input_tile=int(meta.get("input_tile") or (fixed[0] if fixed else 512)),
            fixed_shape=fixed,
            path=str(path),
            score_thresholds=_per_category(meta.get("score_thresholds")),
        )
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: bad model metadata ({e})") from e
    unknown = [c for c in info.categories if c not in CATEGORIES]
    if unknown:
        raise ModelError(f"{path}: model declares unknown categories {unknown}")
    stray = sorted(set(info.score_thresholds) - set(info.categories))
    if stray:
        raise ModelError(f"{path}: score_thresholds names categories the model does not have: {stray}")
    return info


def _per_category(text: str | None) -> dict[str, float]:
    """The ``score_thresholds`` metadata entry (JSON object category → threshold in [0, 1])."""
    if not text:
        return {}
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("score_thresholds is not a JSON object")
    out = {str(k): float(v) for k, v in raw.items()}
    bad = {k: v for k, v in out.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"score_thresholds outside [0, 1]: {bad}")
    return out


class OnnxBackend:
    """An ONNX detector model in an ONNX Runtime session.

    Args:
        path: the .onnx file.
        providers: execution providers (e.g. ``["cuda"]``, ``["auto"]``); default CPU only.
        threads: intra-op threads (default: ONNX Runtime's choice, all cores).

    Raises:
        ModelError: the file is missing, not an ONNX model, or does not follow the contract.
    """

    def __init__(
        self, path: str | Path, *, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # no pre-planned block per input shape: the arena reuses freed buffers instead. Same outputs,
        # ~115 MiB less at batch 4 with 512 px tiles, no measurable time cost (docs/detect.md)
        opts.enable_mem_pattern = False
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=_providers(providers))
        except ModelError:
            raise
        except Exception as e:  # onnxruntime raises its own untyped errors for bad files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: not a usable ONNX model ({first[:200]})") from e
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if "image" not in inputs or len(inputs["image"].shape) != 4 or {"heatmap", "geometry"} - set(outputs):
            raise ModelError(
                f"{path}: model interface is inputs {sorted(inputs)} → outputs {outputs}; "
                "expected image [N,3,H,W] → heatmap, geometry"
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = _info_from_metadata(path, meta, list(inputs["image"].shape))
        self.providers = self.session.get_providers()
        log.debug("loaded %s %s from %s on %s", self.info.name, self.info.version, path, self.providers)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run a batch ``float32 [N,3,H,W]`` RGB 0..255 → ``(heatmap [N,C,h,w], geometry [N,6,h,w])``.

        Raises:
            ModelError: the runtime fails or the outputs have unexpected shapes.
        """
        try:
            heatmap, geometry = self.session.run(["heatmap", "geometry"], {"image": images})
        except Exception as e:
            raise ModelError(
                f"{self.info.path}: inference failed ({str(e).strip().splitlines()[0][:200]})"
            ) from e
        n, _, h, w = images.shape
        expect = (n, len(self.info.categories), h // self.info.stride, w // self.info.stride)
        if heatmap.shape != expect or geometry.shape != (n, 6, *expect[2:]):
            raise ModelError(
                f"{self.info.path}: outputs {heatmap.shape}/{geometry.shape}, expected {expect} and 6 "
                "geometry channels"
            )
        return heatmap, geometry


class OnnxDetector(SlicedDetector):
    """The default detector: sliced inference with an ONNX model.

    Args:
        model: path to an .onnx file or a registered model name; default ``$SITEWATCH_MODEL``
            or the bundled ``"sitewatch-det"``.
        providers: ONNX Runtime execution providers (default CPU; ``["auto"]`` = all present).
        threads: intra-op threads for the runtime.
        settings: settings to read ``SITEWATCH_MODEL`` and ``SITEWATCH_SCORE_THRESHOLD`` from
            (default: the environment).
        **options: tiling/merging options of :class:`SlicedDetector` (``tile_px``,
            ``overlap_px``, ``batch_size``, ``score_threshold``, ``extra_scales`` ...). Without
            ``score_threshold`` (None or absent) the setting ``score_threshold``
            (``SITEWATCH_SCORE_THRESHOLD``) applies; without either, each category uses the
            model's own threshold (``score_thresholds`` metadata, else ``score_threshold``); with
            one, that threshold applies to all categories.

    Raises:
        ModelError: the model is missing, corrupt or of another interface.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
        settings: Settings | None = None,
        **options: object,
    ) -> None:
        settings = settings or Settings()
        path = models.resolve(model, settings)
        if options.get("score_threshold") is None and settings.score_threshold is not None:
            options["score_threshold"] = settings.score_threshold
        super().__init__(OnnxBackend(path, providers=providers, threads=threads), **options)  # type: ignore[arg-type]
