"""The allocation: one candidate per layer, minimizing the summed distortion for the bytes spent.

A multiple-choice knapsack solved for every budget at once by dynamic programming over Pareto frontiers: after
each layer, the states are the (bytes, distortion) pairs of partial choices that no other partial choice beats on
both; adding a layer sums every state with every candidate and keeps the non-dominated sums. The last layer's
frontier holds the optimal choice for every byte budget, which is also the predicted rate–distortion curve. The
frontier is exact while it has at most :data:`MAX_STATES` points; past that, states are merged into as many
buckets of equal byte width (the best of each kept), which costs at most one bucket's width of bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_STATES = 1 << 16


@dataclass
class Frontier:
    """The optimal allocations: ``bytes`` ascending, ``distortion`` strictly descending, one per budget that
    changes the answer; :meth:`choice` gives the candidate index per layer of point ``i``."""

    bytes: np.ndarray
    distortion: np.ndarray
    parents: list[np.ndarray]
    picks: list[np.ndarray]

    def __len__(self) -> int:
        return int(self.bytes.size)

    def choice(self, point: int) -> list[int]:
        """The candidate index per layer of frontier point ``point``."""
        chosen = []
        state = point
        for parents, picks in zip(reversed(self.parents), reversed(self.picks), strict=True):
            chosen.append(int(picks[state]))
            state = int(parents[state])
        return chosen[::-1]

    def within(self, budget: float) -> int | None:
        """The point with the least distortion whose bytes are at most ``budget`` (None when none is)."""
        index = int(np.searchsorted(self.bytes, budget, side="right")) - 1
        return index if index >= 0 else None

    def first_below(self, distortion: float) -> int:
        """The smallest point whose distortion is at most ``distortion`` (the last point when none is)."""
        below = np.flatnonzero(self.distortion <= distortion)
        return int(below[0]) if below.size else len(self) - 1


def pareto_frontier(costs: Sequence[np.ndarray], distortions: Sequence[np.ndarray]) -> Frontier:
    """The optimal allocations of layers whose candidate ``costs`` (bytes) and ``distortions`` are given per layer
    (one array each, same length per layer); the distortion of a choice is the sum of its layers'."""
    state_bytes = np.zeros(1, np.int64)
    state_distortion = np.zeros(1)
    parents, picks = [], []
    for cost, distortion in zip(costs, distortions, strict=True):
        cost = np.asarray(cost, np.int64)
        distortion = np.asarray(distortion, np.float64)
        total_bytes = (state_bytes[:, None] + cost[None, :]).ravel()
        total_distortion = (state_distortion[:, None] + distortion[None, :]).ravel()
        keep = _non_dominated(total_bytes, total_distortion)
        if keep.size > MAX_STATES:
            keep = _bucketed(total_bytes, total_distortion, keep)
        parents.append(keep // cost.size)
        picks.append(keep % cost.size)
        state_bytes, state_distortion = total_bytes[keep], total_distortion[keep]
    return Frontier(state_bytes, state_distortion, parents, picks)


def _non_dominated(costs: np.ndarray, distortions: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats: by bytes ascending, each with less distortion than all
    cheaper ones (ties: the lowest index)."""
    order = np.lexsort((np.arange(costs.size), distortions, costs))
    ordered = distortions[order]
    best_before = np.minimum.accumulate(np.concatenate([[np.inf], ordered[:-1]]))
    return order[ordered < best_before]


def _bucketed(costs: np.ndarray, distortions: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``keep`` (a frontier, bytes ascending) thinned to the last point of each of :data:`MAX_STATES` buckets of
    equal byte width: the least distortion within each bucket."""
    low, high = costs[keep[0]], costs[keep[-1]]
    bucket = ((costs[keep] - low) * (MAX_STATES - 1) // max(high - low, 1)).astype(np.int64)
    last = np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])
    return keep[last]
