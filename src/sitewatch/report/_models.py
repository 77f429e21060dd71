"""What the report says about the detector models named by the passes (version, training, metrics)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sitewatch.detect.reliability import evaluation_of, model_metadata, weak_in
from sitewatch.types import CATEGORY_PLURAL

#: Metadata keys of a model file that hold evaluation results (free-form; shown as given).
_METRIC_HINTS = ("map", "ap50", "precision", "recall", "f1", "metric", "mape")


def _metadata(name: str) -> dict[str, str]:
    """``metadata_props`` of a registered model, or {} when it is not registered or cannot be read."""
    return model_metadata(name)


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
        evaluation = evaluation_of(meta, text) if same else None
        if evaluation:
            parts.append(_describe_evaluation(evaluation))
        descriptions.append("; ".join(parts))
        untrained = "untrained" in version or (same and "untrained" in meta.get("train_command", ""))
        if untrained:
            limitations.append(
                f"Detector model {text} is UNTRAINED: its detections (and everything built on them) carry "
                "no meaning."
            )
        elif evaluation:
            limitations += _weak_categories(evaluation, text)
        elif not metrics:
            limitations.append(
                f"Detector model {text}: no evaluation metrics are recorded with the model; see `sitewatch "
                "evaluate`."
            )
    return descriptions, limitations


def _describe_evaluation(ev: dict[str, Any]) -> str:
    rows = []
    for cat, r in ev["categories"].items():
        if not r.get("objects") or r.get("ap50") is None:
            rows.append(f"{cat} not evaluated (no held-out labels)")
            continue
        pr = ", ".join(f"{k[0].upper()} {r[k]:.2f}" for k in ("precision", "recall") if r.get(k) is not None)
        if r.get("count_mape") is not None:
            pr += f", count error {r['count_mape']:.0f} %"
        rows.append(f"{cat} AP50 {r['ap50']:.2f} ({pr})")
    return f"held-out evaluation ({ev['split']}, {ev['images']} images): " + "; ".join(rows)


def _weak_categories(ev: dict[str, Any], text: str) -> list[str]:
    out = []
    for cat, why in weak_in(ev).items():
        many = CATEGORY_PLURAL.get(cat, cat)
        if why == "no held-out labels":
            out.append(
                f"Detector model {text} was not evaluated on {many} (no held-out labels): its {many} are "
                "unverified."
            )
        else:
            r = ev["categories"][cat]
            recall = f", recall {r['recall']:.2f} at its threshold" if r.get("recall") is not None else ""
            out.append(
                f"Detector model {text} is weak on {many} ({why}{recall}): counts of {many} "
                f"are uncertain and an absence of {many} is not evidence."
            )
    return out
