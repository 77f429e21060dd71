"""Box geometry and the two matching rules, on cases with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from sitewatch.geometry import match_greedy, match_optimal, polygons, rotated_iou
from sitewatch.types import OrientedBox


def test_envelope_polygons_bound_the_rotated_box() -> None:
    box = OrientedBox.make(10, 10, 20 / np.sqrt(2), 20 / np.sqrt(2), 45)  # a diamond in a 20 x 20 square
    [rotated], [env] = polygons([box]), polygons([box], envelope=True)
    assert rotated.area == pytest.approx(200.0)
    assert env.bounds == pytest.approx((0.0, 0.0, 20.0, 20.0))
    assert rotated_iou([box], [box], envelope=True)[0, 0] == pytest.approx(1.0)
    assert polygons([]).shape == (0,) and rotated_iou([], [box]).shape == (0, 1)


def test_match_greedy_is_the_voc_rule() -> None:
    iou = np.array(
        [
            [0.9, 0.0],  # best object 0
            [0.8, 0.6],  # best object 0 too, already claimed: a duplicate, not moved to object 1
            [0.0, 0.4],  # below the threshold
            [0.5, 0.5],  # tie: the first object; 0.5 reaches the threshold
        ]
    )
    best, matched = match_greedy(iou, np.array([0.7, 0.9, 0.8, 0.1]), 0.5)
    assert best.tolist() == [0, 0, -1, 0]
    # Score order: row 1 (0.9) claims object 0 before row 0 (0.7).
    assert matched.tolist() == [False, True, False, False]
    best, matched = match_greedy(np.zeros((2, 0)), np.array([0.5, 0.4]))
    assert best.tolist() == [-1, -1] and not matched.any()


def test_match_greedy_ties_in_score_keep_input_order() -> None:
    _, matched = match_greedy(np.array([[0.7], [0.9]]), np.array([0.5, 0.5]))
    assert matched.tolist() == [True, False]


def test_match_optimal_takes_the_most_pairs_then_the_least_cost() -> None:
    # Taking the cheapest pair (0, 0) first would leave row 1 without a partner.
    cost = np.array([[0.1, 0.3], [0.2, np.inf]])
    rows, cols = match_optimal(cost)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    # Forbidden pairs are never returned, whatever their cost.
    rows, cols = match_optimal(np.array([[0.1, 0.9], [0.2, 0.3]]), np.array([[True, False], [True, False]]))
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0)]
    rows, cols = match_optimal(np.full((2, 3), np.inf))
    assert len(rows) == len(cols) == 0
    assert len(match_optimal(np.zeros((0, 4)))[0]) == 0
