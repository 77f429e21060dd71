"""What the report says about the detector models named by the passes (version, training, metrics)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

#: Metadata keys of a model file that hold evaluation results (free-form; shown as given).
_METRIC_HINTS = ("map", "ap50", "precision", "recall", "f1", "metric", "mape")


def _metadata(name: str) -> dict[str, str]:
    """``metadata_props`` of a registered model, or {} when it is not registered or cannot be read."""
    from sitewatch.detect.registry import models
    from sitewatch.errors import ModelError

    try:
        path = models.path(name)
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except (ModelError, OSError, RuntimeError, ValueError) as e:  # onnxruntime raises RuntimeError subclasses
        log.debug("model %s metadata not read: %s", name, e)
        return {}


def model_notes(model_strings: Iterable[str]) -> tuple[list[str], list[str]]:
    """Describe the models ``"<name> <version>"`` the passes were made with.

    Returns:
        ``(descriptions, limitations)``: one description per model (version, when and how it was
        trained, its evaluation metrics when the model file carries them), and limitations such
        as an untrained model or one whose metrics are unknown.
    """
    descriptions: list[str] = []
    limitations: list[str] = []
    for text in sorted(set(model_strings)):
        name, _, version = text.partition(" ")
        meta = _metadata(name) if name else {}
        same = meta.get("version") == version
        parts = [text]
        if same and meta.get("trained_at"):
            parts.append(f"trained {meta['trained_at'][:10]}")
        if same and meta.get("working_gsd_m"):
            parts.append(f"working GSD {meta['working_gsd_m']} m")
        metrics = {k: v for k, v in meta.items() if same and any(h in k.lower() for h in _METRIC_HINTS)}
        parts += [f"{k} {v}" for k, v in sorted(metrics.items())]
        descriptions.append("; ".join(parts))
        untrained = "untrained" in version or (same and "untrained" in meta.get("train_command", ""))
        if untrained:
            limitations.append(f"Detector model {text} is UNTRAINED: its detections (and everything built on them) carry no meaning.")
        elif not metrics:
            limitations.append(f"Detector model {text}: no evaluation metrics are recorded with the model; see `sitewatch evaluate`.")
    return descriptions, limitations
