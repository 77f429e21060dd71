"""Quality floors for tests of the shipped detector, derived from the evaluation the model carries.

The shipped ONNX file holds its held-out evaluation (``evaluation`` metadata, see
:mod:`sitewatch.detect.reliability`): per dataset and category, the number of objects, AP50,
precision and recall over the whole validation split. A test runs the model on a small fixed
subset of that split, so its measured value scatters around the stored one. The floor a test
asserts is the lower end of the 99 % Wilson score interval of a proportion equal to the stored
value over the subset's own count (objects for recall and AP50, detections for precision):
a model as good as its card fails such a floor about once in a hundred subsets, a model
markedly worse than its card fails it. When a new model is shipped with its evaluation, the
floors follow it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

#: Normal quantile of the two-sided 99 % interval.
Z99 = 2.576


def wilson_interval(p: float, n: int, z: float = Z99) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` observed over ``n`` trials."""
    if n <= 0:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def floor_from_card(stored: float, n: int, z: float = Z99) -> float:
    """Least value a subset of ``n`` trials may show when the model is as good as ``stored``."""
    return wilson_interval(stored, n, z)[0]


def shipped_evaluation() -> tuple[Any, dict[str, Any]]:
    """The shipped detector and the evaluation it carries; a trained model without one fails the test."""
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.detect.reliability import model_evaluation

    detector = OnnxDetector()
    if not detector.info.trained:
        pytest.skip(f"bundled model is a placeholder ({detector.info.version})")
    text = f"{detector.info.name} {detector.info.version}"
    ev = model_evaluation(text)
    if ev is None:
        pytest.fail(f"shipped model {text} carries no held-out evaluation (sitewatch train attach-evaluation)")
    return detector, ev


def card_row(ev: dict[str, Any], dataset: str, category: str) -> dict[str, Any]:
    """The stored metrics of ``category`` on ``dataset``; missing rows fail the test."""
    row = ev.get("by_dataset", {}).get(dataset, {}).get(category)
    if not row or row.get("ap50") is None:
        pytest.fail(f"model evaluation has no {category} row for {dataset}")
    return row
