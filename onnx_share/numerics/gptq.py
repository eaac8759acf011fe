"""Rounding with error compensation (GPTQ) onto a fixed codebook or grid, and the activation-space error.

A layer computes ``Y = X V`` with V [d, out] the weight seen as input features by outputs (per group of a grouped
op: V [G, d, out], one X per group). With H = XᵀX (per group), ‖X(V − V̂)‖² = Σ tr((V − V̂)ᵀ H (V − V̂)). Rounding
every weight to its nearest allowed value ignores H; :func:`gptq_round` rounds one input feature (row) at a time,
in order of falling H[i, i], and spreads each row's rounding error over the rows not yet rounded through the
Cholesky factor of H⁻¹ (Frantar et al., GPTQ), so later rows absorb what earlier ones lost. The allowed values
stay fixed: a :class:`CodebookRounder` snaps to each element's codebook, a :class:`GridRounder` to each element's
grid (scale and zero point). Plain numpy: no graph code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Added to H's diagonal, as a fraction of its mean: keeps the Cholesky factorisation of H well conditioned.
DAMPING = 0.01
# Rows rounded between two updates of the rows after them (the lazy batch update of GPTQ).
BLOCK_ROWS = 128


@dataclass(frozen=True)
class CodebookRounder:
    """Nearest entry of each element's codebook: ``centroids`` [C, k] (each row sorted ascending) and
    ``codebook`` [G, d, out], the codebook row each element of the view uses."""

    centroids: np.ndarray
    codebook: np.ndarray

    def __call__(self, group: int, row: int, values: np.ndarray) -> np.ndarray:
        ids = self.codebook[group, row]
        table = self.centroids[ids]  # [out, k]
        midpoints = (table[:, 1:] + table[:, :-1]) * 0.5
        index = np.count_nonzero(midpoints < values[:, None], axis=1)
        return table[np.arange(len(values)), index]


@dataclass(frozen=True)
class GridRounder:
    """Nearest point of each element's grid ``(q - zero_point) * scale``, q in [qmin, qmax]; ``scale`` and
    ``zero_point`` [G, d, out] per element of the view."""

    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int

    def __call__(self, group: int, row: int, values: np.ndarray) -> np.ndarray:
        scale, zero_point = self.scale[group, row], self.zero_point[group, row]
        steps = np.clip(np.rint(values / scale) + zero_point, self.qmin, self.qmax)
        return (steps - zero_point) * scale


def gptq_round(view: np.ndarray, hessian: np.ndarray, rounder: CodebookRounder | GridRounder) -> np.ndarray:
    """``view`` [G, d, out] rounded by ``rounder`` with GPTQ error compensation on ``hessian`` [G, d, d] (XᵀX per
    group); every returned value is one ``rounder`` gives. Rows whose input never fires (H[i, i] = 0) are rounded
    to nearest: no output depends on them."""
    rounded = np.empty(view.shape, np.float64)
    for group in range(view.shape[0]):
        rounded[group] = _round_group(view[group].astype(np.float64), hessian[group].astype(np.float64), group,
                                      rounder)
    return rounded


def _round_group(weights: np.ndarray, hessian: np.ndarray, group: int, rounder: CodebookRounder | GridRounder
                 ) -> np.ndarray:
    rows = weights.shape[0]
    diagonal = np.diag(hessian).copy()
    live = diagonal > 0
    order = np.argsort(-diagonal, kind="stable")  # act order: the rows that matter most first
    hessian = hessian[np.ix_(order, order)]
    weights = weights[order].copy()
    dead = ~live[order]
    hessian[dead, :] = 0.0
    hessian[:, dead] = 0.0
    hessian[dead, dead] = 1.0
    factor = _inverse_cholesky(hessian)
    rounded = np.empty_like(weights)
    for start in range(0, rows, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, rows)
        block = weights[start:stop].copy()
        errors = np.zeros_like(block)
        inverse = factor[start:stop, start:stop]
        for i in range(stop - start):
            values = rounder(group, int(order[start + i]), block[i])
            rounded[start + i] = values
            if dead[start + i]:
                continue
            error = (block[i] - values) / inverse[i, i]
            block[i + 1 :] -= np.outer(inverse[i, i + 1 :], error)
            errors[i] = error
        weights[stop:] -= factor[start:stop, stop:].T @ errors
    result = np.empty_like(rounded)
    result[order] = rounded
    return result


def _inverse_cholesky(hessian: np.ndarray) -> np.ndarray:
    """The upper Cholesky factor of (H + λI)⁻¹, λ = :data:`DAMPING` × mean(diag H), raised tenfold until H + λI
    factorises."""
    damping = DAMPING * float(np.mean(np.diag(hessian)))
    identity = np.eye(len(hessian))
    for _ in range(8):
        try:
            lower = np.linalg.cholesky(hessian + damping * identity)
            inverse = np.linalg.inv(lower)
            return np.linalg.cholesky(inverse.T @ inverse).T
        except np.linalg.LinAlgError:
            damping *= 10.0
    raise np.linalg.LinAlgError("the input statistics do not factorise even with heavy damping")


def activation_error(original: np.ndarray, decoded: np.ndarray, hessian: np.ndarray | None, diagonal: np.ndarray
                     ) -> float:
    """‖X(V − V̂)‖ / ‖XV‖ for views [G, d, out] given ``hessian`` [G, d, d] = XᵀX per group, or, without it,
    the estimate from its ``diagonal`` [G, d] alone (cross terms dropped)."""
    difference = original - decoded
    if hessian is not None:
        error = float(np.sum(np.matmul(hessian, difference) * difference))
        reference = float(np.sum(np.matmul(hessian, original) * original))
    else:
        error = float(np.sum(diagonal[:, :, None] * difference**2))
        reference = float(np.sum(diagonal[:, :, None] * original**2))
    return float(np.sqrt(max(error, 0.0) / reference)) if reference > 0 else 0.0
