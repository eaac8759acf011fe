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

    def round_block(self, block: np.ndarray, inverse: np.ndarray, rows: np.ndarray, dead: np.ndarray,
                    rounded: np.ndarray, errors: np.ndarray) -> None:
        """GPTQ over one block (see :func:`gptq_round`): rows ``rows`` [G, b] of the view, rounded in turn."""
        from onnx_share.numerics.gptq_kernels import round_block_codebook

        centroids = np.ascontiguousarray(self.centroids)
        midpoints = (centroids[:, 1:] + centroids[:, :-1]) * 0.5
        round_block_codebook(block, inverse, rows, dead, midpoints, centroids, self.codebook, rounded, errors)


@dataclass(frozen=True)
class GridRounder:
    """Nearest point of each element's grid ``(q - zero_point) * scale``, q in [qmin, qmax]; ``scale`` and
    ``zero_point`` [G, d, out] per element of the view."""

    scale: np.ndarray
    zero_point: np.ndarray
    qmin: int
    qmax: int

    def round_block(self, block: np.ndarray, inverse: np.ndarray, rows: np.ndarray, dead: np.ndarray,
                    rounded: np.ndarray, errors: np.ndarray) -> None:
        """GPTQ over one block (see :func:`gptq_round`): rows ``rows`` [G, b] of the view, rounded in turn."""
        from onnx_share.numerics.gptq_kernels import round_block_grid

        round_block_grid(block, inverse, rows, dead, self.scale.astype(np.float64),
                         self.zero_point.astype(np.float64), float(self.qmin), float(self.qmax), rounded, errors)


@dataclass(frozen=True)
class GptqPlan:
    """What GPTQ needs of XᵀX [G, d, d], computed once per weight for every form rounded on it: the act order
    (rows that matter most first), the rows whose input never fires, and the upper Cholesky factor of the
    damped inverse in that order."""

    order: np.ndarray
    dead: np.ndarray
    factor: np.ndarray

    @classmethod
    def of(cls, hessian: np.ndarray) -> GptqPlan:
        rows = hessian.shape[1]
        diagonal = np.diagonal(hessian, axis1=1, axis2=2)
        order = np.argsort(-diagonal, axis=1, kind="stable")
        hessian = np.take_along_axis(np.take_along_axis(hessian.astype(np.float64), order[:, :, None], 1),
                                     order[:, None, :], 2)
        dead = np.take_along_axis(diagonal, order, 1) <= 0
        hessian[np.broadcast_to(dead[:, :, None], hessian.shape)] = 0.0
        hessian[np.broadcast_to(dead[:, None, :], hessian.shape)] = 0.0
        hessian[:, np.arange(rows), np.arange(rows)] += dead
        return cls(order, dead, _inverse_cholesky(hessian))


def gptq_round(view: np.ndarray, hessian: np.ndarray | GptqPlan, rounder: CodebookRounder | GridRounder
               ) -> np.ndarray:
    """``view`` [G, d, out] rounded by ``rounder`` with GPTQ error compensation on ``hessian`` [G, d, d] (XᵀX per
    group, or its :class:`GptqPlan`), all groups at once; every returned value is one ``rounder`` gives. Rows
    whose input never fires (H[i, i] = 0) are rounded to nearest: no output depends on them."""
    plan = hessian if isinstance(hessian, GptqPlan) else GptqPlan.of(hessian)
    order, dead, factor = plan.order, plan.dead, plan.factor
    rows = view.shape[1]
    weights = np.take_along_axis(view.astype(np.float64), order[:, :, None], 1)
    rounded = np.empty_like(weights)
    for start in range(0, rows, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, rows)
        block = weights[:, start:stop].copy()
        errors = np.zeros_like(block)
        part = np.empty_like(block)
        rounder.round_block(block, np.ascontiguousarray(factor[:, start:stop, start:stop]),
                            np.ascontiguousarray(order[:, start:stop]), np.ascontiguousarray(dead[:, start:stop]),
                            part, errors)
        rounded[:, start:stop] = part
        weights[:, stop:] -= np.matmul(factor[:, start:stop, stop:].transpose(0, 2, 1), errors)
    result = np.empty_like(rounded)
    np.put_along_axis(result, order[:, :, None], rounded, 1)
    return result


def _inverse_cholesky(hessian: np.ndarray) -> np.ndarray:
    """Per group, the upper Cholesky factor of (H + λI)⁻¹, λ = :data:`DAMPING` × mean(diag H), raised tenfold
    until every H + λI factorises."""
    damping = DAMPING * np.mean(np.diagonal(hessian, axis1=1, axis2=2), axis=1)
    identity = np.eye(hessian.shape[1])
    for _ in range(8):
        try:
            lower = np.linalg.cholesky(hessian + damping[:, None, None] * identity)
            inverse = np.linalg.inv(lower)
            return np.linalg.cholesky(np.matmul(inverse.transpose(0, 2, 1), inverse)).transpose(0, 2, 1)
        except np.linalg.LinAlgError:
            damping = damping * 10.0
    raise np.linalg.LinAlgError("the input statistics do not factorise even with heavy damping")


def activation_error(original: np.ndarray, decoded: np.ndarray, hessian: np.ndarray | None, diagonal: np.ndarray,
                     energy: float | None = None) -> float:
    """‖X(V − V̂)‖ / ‖XV‖ for views [G, d, out] given ``hessian`` [G, d, d] = XᵀX per group, or, without it,
    the estimate from its ``diagonal`` [G, d] alone (cross terms dropped); ``energy``: ‖XV‖², when known."""
    difference = original - decoded
    if energy is None:
        energy = output_energy(original, hessian, diagonal)
    if hessian is not None:
        error = float(np.sum(np.matmul(hessian, difference) * difference))
    else:
        error = float(np.sum(diagonal[:, :, None] * difference**2))
    return float(np.sqrt(max(error, 0.0) / energy)) if energy > 0 else 0.0


def output_energy(view: np.ndarray, hessian: np.ndarray | None, diagonal: np.ndarray) -> float:
    """‖XV‖² for a view [G, d, out] (from the diagonal of XᵀX alone without ``hessian``)."""
    if hessian is not None:
        return float(np.sum(np.matmul(hessian, view) * view))
    return float(np.sum(diagonal[:, :, None] * view**2))


# Columns whose normal equations are formed at once in :func:`refit_centroids` (bounds its [d, columns, k] blocks).
REFIT_COLUMNS = 64


def refit_centroids(view: np.ndarray, hessian: np.ndarray, codebook: np.ndarray, assignment: np.ndarray,
                    centroids: np.ndarray) -> np.ndarray:
    """The centroids [C, k] that minimise Σ_g tr((V − V̂)ᵀ H (V − V̂)) for the fixed ``assignment`` [G, d, out]
    (entry of each element) and ``codebook`` [G, d, out] (row of ``centroids`` each element uses, constant along d:
    one codebook per output channel or group of them): per codebook, the normal equations Σ_o E_oᵀ H E_o c =
    Σ_o E_oᵀ H v_o with E_o the one-hot of column o's assignment. Entries no element uses keep their value."""
    rows, entries = centroids.shape
    normal = np.zeros((rows, entries, entries))
    right = np.zeros((rows, entries))
    eye = np.eye(entries, dtype=np.float32)
    for group in range(view.shape[0]):
        gram = hessian[group].astype(np.float32)
        for start in range(0, view.shape[2], REFIT_COLUMNS):
            columns = slice(start, start + REFIT_COLUMNS)
            onehot = eye[assignment[group, :, columns]]  # [d, c, k]
            weighted = np.tensordot(gram, onehot, axes=(1, 0))  # H E_o for each column: [d, c, k]
            owners = codebook[group, 0, columns]
            np.add.at(normal, owners, np.einsum("ick,icl->ckl", onehot, weighted))
            products = gram @ view[group, :, columns].astype(np.float32)  # H v_o: [d, c]
            np.add.at(right, owners, np.einsum("ick,ic->ck", onehot, products))
    refit = centroids.astype(np.float64).copy()
    for row in range(rows):
        used = np.diagonal(normal[row]) > 0
        if used.any():
            system = normal[row][np.ix_(used, used)]
            ridge = 1e-9 * float(np.mean(np.diagonal(system)))
            refit[row, used] = np.linalg.solve(system + ridge * np.eye(int(used.sum())), right[row, used])
    return refit
