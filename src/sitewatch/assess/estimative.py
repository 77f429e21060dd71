"""Estimative language (ICD 203) and analytic confidence levels.

ICD 203 "Analytic Standards" (US ODNI, 2015), section D.6.e: likelihood terms and their ranges.
Likelihood and confidence are kept apart: a judgement states a likelihood; confidence (low,
moderate, high) is stated separately, from the quality and quantity of the evidence.
"""

from __future__ import annotations

#: (upper bound of probability, term), ICD 203 bands. Bounds are exclusive except the last.
ICD203_TERMS: tuple[tuple[float, str], ...] = (
    (0.05, "almost no chance"),
    (0.20, "very unlikely"),
    (0.45, "unlikely"),
    (0.55, "roughly even chance"),
    (0.80, "likely"),
    (0.95, "very likely"),
    (1.00, "almost certain"),
)
CONFIDENCE_LEVELS = ("low", "moderate", "high")


def estimative_term(probability: float) -> str:
    """The ICD 203 term for a probability in [0, 1].

    Bands: almost no chance < 5 %, very unlikely 5-20 %, unlikely 20-45 %, roughly even chance
    45-55 %, likely 55-80 %, very likely 80-95 %, almost certain >= 95 %. A value on a boundary
    takes the higher band, except 55 % which is still "roughly even chance".

    Raises:
        ValueError: probability outside [0, 1].
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if 0.45 <= probability <= 0.55:
        return "roughly even chance"
    for upper, term in ICD203_TERMS:
        if probability < upper:
            return term
    return ICD203_TERMS[-1][1]


def confidence_level(points: int) -> str:
    """Confidence from evidence-quality points: <= 1 low, 2-3 moderate, >= 4 high."""
    if points <= 1:
        return "low"
    return "moderate" if points <= 3 else "high"
