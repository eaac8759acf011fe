"""Low-rank numerics: rank selection (energy, max error, savings) and balanced SVD factors on numpy."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import KNOWN_S, low_rank_matrix, with_singular_values

from onnx_share.numerics import low_rank


def test_rank_r_weight_reproduced_at_rank_r(rng: np.random.Generator) -> None:
    w = low_rank_matrix(rng, 40, 30, 5)
    factors = low_rank.factorize(w, 5)
    assert factors.left.shape == (40, 5) and factors.right.shape == (5, 30)
    np.testing.assert_allclose(factors.left @ factors.right, w, atol=1e-10)
    assert factors.relative_error < 1e-12
    assert low_rank.rank_for_error(low_rank.singular_values(w), 1e-9) == 5


def test_factors_are_balanced_and_deterministic(rng: np.random.Generator) -> None:
    w = with_singular_values(rng, 20, 12, KNOWN_S)
    factors = low_rank.factorize(w, 4)
    np.testing.assert_allclose(np.linalg.norm(factors.left, axis=0), np.sqrt(KNOWN_S[:4]), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(factors.right, axis=1), np.sqrt(KNOWN_S[:4]), rtol=1e-12)
    again = low_rank.factorize(w.copy(), 4)
    np.testing.assert_array_equal(again.left, factors.left)
    pivots = np.argmax(np.abs(factors.left), axis=0)
    assert np.all(factors.left[pivots, np.arange(4)] > 0)
    expected_error = np.sqrt((KNOWN_S[4:] ** 2).sum() / (KNOWN_S**2).sum())
    assert factors.relative_error == pytest.approx(expected_error, rel=1e-12)
    assert np.linalg.norm(w - factors.left @ factors.right) / np.linalg.norm(w) == pytest.approx(expected_error)


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5, 6])
def test_energy_threshold_gives_the_rank_the_singular_values_imply(rng: np.random.Generator, rank: int) -> None:
    s = low_rank.singular_values(with_singular_values(rng, 30, 20, KNOWN_S))
    kept = (KNOWN_S[:rank] ** 2).sum() / (KNOWN_S**2).sum()
    assert low_rank.rank_for_energy(s, kept) == rank  # exactly the energy of `rank` values
    if rank < len(KNOWN_S):
        assert low_rank.rank_for_energy(s, kept * (1 + 1e-6)) == rank + 1  # a little more needs one more
    assert low_rank.energy_kept(s, rank) == pytest.approx(kept, rel=1e-12)


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_max_error_picks_the_smallest_rank_within_it(rng: np.random.Generator, rank: int) -> None:
    s = low_rank.singular_values(with_singular_values(rng, 30, 20, KNOWN_S))
    error = np.sqrt((KNOWN_S[rank:] ** 2).sum() / (KNOWN_S**2).sum())
    assert low_rank.truncation_error(s, rank) == pytest.approx(error, rel=1e-9)
    assert low_rank.rank_for_error(s, error) == rank
    assert low_rank.rank_for_error(s, error * (1 - 1e-6)) == rank + 1
    assert low_rank.rank_for_error(s, 0.999) == 1


def test_choose_rank_combines_criteria_and_caps_at_the_shape(rng: np.random.Generator) -> None:
    s = low_rank.singular_values(with_singular_values(rng, 30, 20, KNOWN_S))
    assert low_rank.choose_rank(None, (30, 20), rank=7) == 7
    assert low_rank.choose_rank(None, (30, 4), rank=7) == 4
    assert low_rank.choose_rank(s, (30, 20), rank=1, energy=0.99) == low_rank.rank_for_energy(s, 0.99)
    assert low_rank.choose_rank(s, (30, 20), rank=6, max_error=0.5) == 6
    with pytest.raises(ValueError, match="give rank"):
        low_rank.choose_rank(s, (30, 20))


@pytest.mark.parametrize(
    ("rows", "cols", "min_saving", "expected"),
    [(10, 10, 0.0, 5), (10, 10, 0.2, 4), (64, 48, 0.2, 21), (4, 4, 0.6, 0), (1, 100, 0.0, 0)],
)
def test_max_saving_rank(rows: int, cols: int, min_saving: float, expected: int) -> None:
    r = low_rank.max_saving_rank(rows, cols, min_saving)
    assert r == expected
    assert r * (rows + cols) <= (1 - min_saving) * rows * cols
    assert (r + 1) * (rows + cols) > (1 - min_saving) * rows * cols
