"""How far a detector model's output can be trusted, per category, from the evaluation it carries.

A model file may hold its held-out evaluation (``evaluation`` metadata, written by
``sitewatch train attach-evaluation`` from ``sitewatch evaluate --json``). Reports quote it
(:func:`model_notes`), and the assessment lowers its confidence when a fired indicator rests only
on categories the model finds poorly.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sitewatch.types import CATEGORY_PLURAL

log = logging.getLogger(__name__)

#: Metadata key of the held-out evaluation.
EVALUATION_KEY = "evaluation"
#: Below this held-out AP50 a category is weak.
WEAK_AP50 = 0.5
#: A category evaluated on fewer held-out objects than this is weak whatever its AP50: with 5
#: objects one found or missed moves AP50 by about 0.2, so its figure cannot vouch for it.
MIN_HELD_OUT_OBJECTS = 20


@lru_cache(maxsize=16)
def _metadata_cached(path: str, mtime_ns: int) -> dict[str, str]:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def model_metadata(name: str) -> dict[str, str]:
    """``metadata_props`` of a registered model, or {} when it is not registered or cannot be read."""
    from sitewatch.detect.registry import models
    from sitewatch.errors import ModelError

    try:
        path = models.path(name)
        return dict(_metadata_cached(str(path), path.stat().st_mtime_ns))
    except (ModelError, OSError, RuntimeError, ValueError) as e:  # onnxruntime raises RuntimeError subclasses
        log.debug("model %s metadata not read: %s", name, e)
        return {}


def model_base(text: str) -> str:
    """``"<name> <version>"`` of a detector label, without the extra passes it may name in a
    closing bracket (:attr:`~sitewatch.detect.sliced.SlicedDetector.label`)."""
    return _PASSES.sub("", text)


#: The extra passes a detector label may end with: `` (×0.5 scale, mirrored)``.
_PASSES = re.compile(r" \([^()]*\)$")


def evaluation_of(meta: dict[str, str], text: str) -> dict[str, Any] | None:
    """The evaluation stored in ``meta`` if it is of model ``text`` ("<name> <version>", extra
    passes in brackets allowed: the stored evaluation is of the model's default passes), else None."""
    raw = meta.get(EVALUATION_KEY)
    if not raw:
        return None
    try:
        ev = json.loads(raw)
    except json.JSONDecodeError as e:
        log.debug("model %s: evaluation metadata not read: %s", text, e)
        return None
    if (
        not isinstance(ev, dict)
        or ev.get("model") != model_base(text)
        or not isinstance(ev.get("categories"), dict)
    ):
        return None
    rows = ev["categories"].values()
    if not all(isinstance(r, dict) and isinstance(r.get("ap50"), float | int | None) for r in rows):
        log.debug("model %s: evaluation metadata malformed, ignored", text)
        return None
    return ev


def model_evaluation(text: str) -> dict[str, Any] | None:
    """The held-out evaluation carried by the registered model ``text`` ("<name> <version>",
    extra passes in brackets allowed)."""
    name, _, _ = model_base(text).partition(" ")
    return evaluation_of(model_metadata(name), text) if name else None


def weak_in(ev: dict[str, Any]) -> dict[str, str]:
    """Categories an evaluation shows to be weak → why: no held-out labels, held-out AP50 below
    :data:`WEAK_AP50`, or fewer than :data:`MIN_HELD_OUT_OBJECTS` held-out objects."""
    out = {}
    for cat, r in ev["categories"].items():
        if not r.get("objects") or r.get("ap50") is None:
            out[cat] = "no held-out labels"
        elif r["ap50"] < WEAK_AP50:
            out[cat] = f"held-out AP50 {r['ap50']:.2f}"
        elif r["objects"] < MIN_HELD_OUT_OBJECTS:
            out[cat] = f"held-out AP50 {r['ap50']:.2f} on only {r['objects']} objects"
    return out


def weak_categories(model_texts: Iterable[str]) -> dict[str, str]:
    """Categories that any of the models (with a stored evaluation) detects poorly → why.

    Models are taken by ``"<name> <version>"`` (:func:`model_base`): the stored evaluation is of
    a model's default passes, whatever extra passes a label names. Models without a stored
    evaluation contribute nothing (their limits are unknown, which reports state separately).
    """
    out: dict[str, list[str]] = {}
    for text in sorted({model_base(t) for t in model_texts}):
        ev = model_evaluation(text)
        for cat, why in (weak_in(ev) if ev else {}).items():
            out.setdefault(cat, []).append(f"{why} for {text}")
    return {c: "; ".join(v) for c, v in out.items()}


#: Metadata keys of a model file that hold evaluation results (free-form; shown as given).
_METRIC_HINTS = ("map", "ap50", "precision", "recall", "f1", "metric", "mape")


def model_notes(model_strings: Iterable[str]) -> tuple[list[str], list[str]]:
    """Describe the models the passes were made with (labels ``"<name> <version>"``, perhaps
    followed by extra passes in brackets: one entry per ``"<name> <version>"``).

    Returns:
        ``(descriptions, limitations)``: one description per model (version, the extra passes of
        the passes made with them, when and how it was trained, its evaluation metrics when the
        model file carries them), and limitations such as an untrained model or one whose
        metrics are unknown.
    """
    descriptions: list[str] = []
    limitations: list[str] = []
    labels: dict[str, set[str]] = {}
    for label in model_strings:
        labels.setdefault(model_base(label), set()).add(label)
    for text in sorted(labels):
        name, _, version = text.partition(" ")
        meta = model_metadata(name) if name else {}
        same = meta.get("version") == version
        parts = [text]
        variants = sorted(label[len(text) + 2 : -1] for label in labels[text] if label != text)
        if variants:
            parts.append("passes also made with " + "; ".join(variants))
        if same and meta.get("trained_at"):
            parts.append(f"trained {meta['trained_at'][:10]}")
        if same and meta.get("working_gsd_m"):
            parts.append(f"working GSD {meta['working_gsd_m']} m")
        metrics = {k: v for k, v in meta.items() if same and any(h in k.lower() for h in _METRIC_HINTS)}
        parts += [f"{k} {v}" for k, v in sorted(metrics.items())]
        evaluation = evaluation_of(meta, text) if same else None
        if evaluation:
            parts.append(_describe_evaluation(evaluation, default_passes=bool(variants)))
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


def _describe_evaluation(ev: dict[str, Any], *, default_passes: bool = False) -> str:
    rows = []
    for cat, r in ev["categories"].items():
        if not r.get("objects") or r.get("ap50") is None:
            rows.append(f"{cat} not evaluated (no held-out labels)")
            continue
        pr = ", ".join(f"{k[0].upper()} {r[k]:.2f}" for k in ("precision", "recall") if r.get(k) is not None)
        if r.get("count_mape") is not None:
            pr += f", count error {r['count_mape']:.0f} %"
        rows.append(f"{cat} AP50 {r['ap50']:.2f} ({pr})")
    of = " of the default passes" if default_passes else ""
    return f"held-out evaluation{of} ({ev['split']}, {ev['images']} images): " + "; ".join(rows)


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
