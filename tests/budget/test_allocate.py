"""The multiple-choice knapsack: the Pareto frontier holds the exact optimum for every byte budget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnx_share.budget import allocate
from onnx_share.budget.allocate import pareto_frontier


def brute_force(costs, distortions, budget):
    best = None
    for choice in itertools.product(*(range(len(c)) for c in costs)):
        spent = sum(c[i] for c, i in zip(costs, choice, strict=True))
        if spent > budget:
            continue
        total = sum(d[i] for d, i in zip(distortions, choice, strict=True))
        if best is None or total < best[0] - 1e-12:
            best = (total, spent)
    return best


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 5))
def test_frontier_point_within_a_budget_is_the_brute_force_optimum(seed: int, layers: int, options: int) -> None:
    rng = np.random.default_rng(seed)
    costs = [rng.integers(1, 60, options) for _ in range(layers)]
    distortions = [rng.uniform(0, 1, options) for _ in range(layers)]
    frontier = pareto_frontier(costs, distortions)
    assert np.all(np.diff(frontier.bytes) > 0) and np.all(np.diff(frontier.distortion) < 0)
    for budget in range(0, 60 * layers + 1, 7):
        expected = brute_force(costs, distortions, budget)
        point = frontier.within(budget)
        if expected is None:
            assert point is None
            continue
        assert point is not None
        choice = frontier.choice(point)
        assert sum(c[i] for c, i in zip(costs, choice, strict=True)) == frontier.bytes[point] <= budget
        assert sum(d[i] for d, i in zip(distortions, choice, strict=True)) == pytest.approx(expected[0])
        assert frontier.distortion[point] == pytest.approx(expected[0])


def test_first_below_is_the_cheapest_point_meeting_a_distortion() -> None:
    frontier = pareto_frontier([np.array([1, 2, 4]), np.array([1, 3])],
                               [np.array([9.0, 4.0, 1.0]), np.array([2.0, 0.0])])
    # (bytes, distortion) of the six choices: (2, 11) (4, 9) (3, 6) (5, 4) (5, 3) (7, 1); (4, 9), (5, 4) lose.
    assert list(frontier.bytes) == [2, 3, 5, 7]
    assert list(frontier.distortion) == [11.0, 6.0, 3.0, 1.0]
    assert frontier.choice(2) == [2, 0]
    assert frontier.first_below(4.5) == 2
    assert frontier.first_below(-1.0) == len(frontier) - 1
    assert frontier.within(1) is None and frontier.within(4) == 1


def test_bucketing_keeps_the_best_of_each_byte_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    costs = [rng.integers(1, 1000, 12) for _ in range(6)]
    distortions = [rng.uniform(0.5, 2) * np.exp(-c / 200) for c in costs]  # more bytes, less error
    exact = pareto_frontier(costs, distortions)
    monkeypatch.setattr(allocate, "MAX_STATES", 16)
    thinned = pareto_frontier(costs, distortions)
    assert len(exact) > 100 and len(thinned) <= 16
    width = (exact.bytes[-1] - exact.bytes[0]) / 15 * 6  # at most one bucket's width lost per layer
    for budget in np.linspace(exact.bytes[0] + width, exact.bytes[-1], 20):
        near = exact.within(budget - width)
        point = thinned.within(budget)
        assert point is not None and near is not None
        assert thinned.distortion[point] <= exact.distortion[near] + 1e-12
