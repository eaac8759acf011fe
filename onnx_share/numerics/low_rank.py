"""Truncated SVD of a weight matrix: rank selection from the singular values and balanced factors.

A matrix W [m, n] with singular values s (descending) is approximated at rank r by A [m, r] @ B [r, n] with
A = U_r·sqrt(S_r) and B = sqrt(S_r)·V_rᵀ, so both factors carry the same scale (good for clustering them
afterwards). The relative Frobenius error of that approximation is exact from the singular values:
‖W − AB‖/‖W‖ = sqrt(Σ_{i>r} s_i²) / sqrt(Σ s_i²). All work is in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Relative slack on energy / error comparisons, so thresholds hit exactly by the singular values (up to
# float64 rounding of the SVD) select the rank they name.
RANK_TOLERANCE = 1e-9


@dataclass(frozen=True)
class LowRankFactors:
    """``left`` [m, r] @ ``right`` [r, n] ≈ W; ``singular_values`` are all of W's, descending."""

    left: np.ndarray
    right: np.ndarray
    singular_values: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.left.shape[1])

    @property
    def relative_error(self) -> float:
        return truncation_error(self.singular_values, self.rank)


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """W's singular values in float64, descending, from the eigenvalues of the smaller Gram matrix W Wᵀ or
    Wᵀ W (tens of times faster than an SVD here). Squaring leaves values below about sqrt(n·eps) of the
    largest at rounding noise, so those are set to 0: they hold under n·eps of the energy and move no
    energy or error threshold."""
    data = _as_matrix(matrix)
    gram = data @ data.T if data.shape[0] <= data.shape[1] else data.T @ data
    values = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None))
    noise = values[0] * np.sqrt(gram.shape[0] * np.finfo(np.float64).eps) if values.size else 0.0
    return np.where(values > noise, values, 0.0)


def truncation_error(values: np.ndarray, rank: int) -> float:
    """‖W − W_r‖_F / ‖W‖_F for the best rank-``rank`` approximation (0 for an all-zero W)."""
    squares = np.asarray(values, dtype=np.float64) ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 0.0
    return math.sqrt(max(float(squares[rank:].sum()), 0.0) / total)


def energy_kept(values: np.ndarray, rank: int) -> float:
    """The share of Σ s_i² that the first ``rank`` singular values hold (1 for an all-zero W)."""
    squares = np.asarray(values, dtype=np.float64) ** 2
    total = float(squares.sum())
    return 1.0 if total == 0.0 else float(squares[:rank].sum()) / total


def rank_for_energy(values: np.ndarray, energy: float) -> int:
    """The smallest rank (at least 1) whose singular values hold ``energy`` of Σ s_i²."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    squares = np.asarray(values, dtype=np.float64) ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 1
    kept = np.cumsum(squares)
    enough = np.flatnonzero(kept >= (energy - RANK_TOLERANCE) * total)
    return int(enough[0]) + 1 if enough.size else len(squares)


def rank_for_error(values: np.ndarray, max_error: float) -> int:
    """The smallest rank (at least 1) whose relative Frobenius error is at most ``max_error``."""
    if not max_error >= 0.0:
        raise ValueError(f"max_error must be non-negative, got {max_error}")
    squares = np.asarray(values, dtype=np.float64) ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 1
    # tails[r] = Σ_{i >= r} s_i², so the error at rank r is sqrt(tails[r] / total); tails[len] = 0.
    tails = np.append(np.cumsum(squares[::-1])[::-1], 0.0)
    bound = (max_error**2 * (1.0 + RANK_TOLERANCE) + RANK_TOLERANCE**2) * total
    ok = np.flatnonzero(tails <= bound)
    return max(1, int(ok[0]))


def choose_rank(
    values: np.ndarray | None,
    shape: tuple[int, int],
    *,
    rank: int | None = None,
    energy: float | None = None,
    max_error: float | None = None,
) -> int:
    """The rank the criteria ask for, capped at min(m, n); with several criteria, the largest (all met).

    ``values`` (the singular values) may be None when only ``rank`` is given.
    """
    chosen = []
    if rank is not None:
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        chosen.append(rank)
    if energy is not None or max_error is not None:
        if values is None:
            raise ValueError("energy and max_error need the singular values")
        if energy is not None:
            chosen.append(rank_for_energy(values, energy))
        if max_error is not None:
            chosen.append(rank_for_error(values, max_error))
    if not chosen:
        raise ValueError("give rank, energy or max_error")
    return min(max(chosen), min(shape))


def max_saving_rank(rows: int, cols: int, min_saving: float) -> int:
    """The largest r with r·(rows + cols) <= (1 − min_saving)·rows·cols (0 when no rank saves enough)."""
    if not 0.0 <= min_saving < 1.0:
        raise ValueError(f"min_saving must be in [0, 1), got {min_saving}")
    budget = (1.0 - min_saving) * rows * cols
    r = int(budget // (rows + cols))
    while r > 0 and r * (rows + cols) > budget:  # guard the float division at exact boundaries
        r -= 1
    while (r + 1) * (rows + cols) <= budget:
        r += 1
    return r


def factorize(matrix: np.ndarray, rank: int) -> LowRankFactors:
    """Balanced rank-``rank`` factors of a 2-D matrix by a full SVD in float64.

    Signs are fixed (the largest-magnitude entry of every left singular vector is positive), so the same
    matrix always gives the same factors.
    """
    data = _as_matrix(matrix)
    if not 1 <= rank <= min(data.shape):
        raise ValueError(f"rank must be from 1 to {min(data.shape)} for a {data.shape} matrix, got {rank}")
    u, s, vt = np.linalg.svd(data, full_matrices=False)
    u, vt = u[:, :rank], vt[:rank]
    pivots = np.argmax(np.abs(u), axis=0)
    signs = np.where(u[pivots, np.arange(rank)] < 0, -1.0, 1.0)
    root = np.sqrt(s[:rank]) * signs
    left = u * root
    right = (np.sqrt(s[:rank])[:, None] * signs[:, None]) * vt
    return LowRankFactors(left, right, s)


def _as_matrix(matrix: np.ndarray) -> np.ndarray:
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("matrix holds NaN or infinity")
    return data
