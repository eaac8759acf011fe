"""Speed and quality of ``kmeans_1d`` against scikit-learn's KMeans, the exact DP and one ``np.sort``.

The tensor is heavy-tailed like real weights: student-t (df=3) scaled by 0.02, float32, seeded. For each
size and k the table gives wall times (median of ``--repeats`` runs; numba JIT compilation excluded by a
warm-up call of every path first) and the SSE relative to the optimum:

* ``kmeans_1d`` (default ``init="optimal"``): seconds, weights/s, relative SSE.
* scikit-learn ``KMeans(n_clusters=k, n_init=10)`` on ``x.reshape(-1, 1)`` (the approach it replaces), run
  once, only where it finishes in reasonable time (see ``--sklearn``).
* ``kmeans_1d_exact``, the O(k u log u) DP on all ``u`` distinct values, which defines the optimum. Above
  ``--exact-full-max`` values only its optimal SSE is computed (the DP's last layer, O(u) memory, same
  exact value, no labels) and its time is that of this SSE-only run.
* one ``np.sort`` of the tensor, the floor of any sorting approach.

    python tools/bench_kmeans.py                      # markdown table on stdout (~15-25 minutes)
    python tools/bench_kmeans.py --sizes 1e7 --sklearn none --no-exact   # timings only (seconds)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from onnx_share.codebook import kmeans as km

# (n, k) pairs on which scikit-learn runs with --sklearn=default: 1e5 all k, 1e6 only k=256 (minutes).
SKLEARN_DEFAULT = {(100_000, 16), (100_000, 256), (1_000_000, 256)}


def draw(n: int, seed: int = 0) -> np.ndarray:
    return (0.02 * np.random.default_rng(seed).standard_t(3, n)).astype(np.float32)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls and the last result."""
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def sse_of(x: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    return float(np.sum((x.astype(np.float64) - centers.astype(np.float64)[labels]) ** 2))


def sklearn_sse(x: np.ndarray, k: int) -> tuple[float, float]:
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    model = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x.reshape(-1, 1))
    seconds = time.perf_counter() - t0
    return seconds, sse_of(x, model.cluster_centers_[:, 0], model.labels_)


def warm_up(ks: list[int]) -> None:
    """Compile (or load from numba's cache) every kernel before timing anything."""
    for k in ks:
        km.kmeans_1d(draw(100_000, 1), k)  # histogram path
        km.kmeans_1d(draw(5_000, 1), k)  # sorted path
        km.kmeans_1d_exact(draw(5_000, 1), k)
        km._exact_sse(draw(5_000, 1), k)


def fmt_rel(rel: float) -> str:
    if rel != rel:  # no optimum computed
        return ""
    return f"{rel:.1e}" if rel > 1e-12 else "0 (exact)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6, 1e7])
    parser.add_argument("--ks", nargs="+", type=int, default=[16, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sklearn", choices=["default", "none", "all"], default="default",
                        help="default: 1e5 all k and 1e6 k=256; all: every (size, k) (hours at 1e7)")
    parser.add_argument("--exact-full-max", type=float, default=1e6,
                        help="largest size on which kmeans_1d_exact runs in full (labels too)")
    parser.add_argument("--no-exact", action="store_true", help="timings only: skip the exact DP (no rel. SSE)")
    args = parser.parse_args()
    ks = sorted(set(args.ks))
    warm_up(ks)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start; numpy {np.__version__}\n")
    print("| n | k | kmeans_1d | weights/s | rel. SSE | scikit-learn KMeans (n_init=10) | its rel. SSE | speed-up "
          "| exact DP | np.sort |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        n = int(size)
        x = draw(n)
        sort_s, _ = timed(lambda x=x: np.sort(x), args.repeats)
        for k in ks:
            ours_s, res = timed(lambda x=x, k=k: km.kmeans_1d(x, k), args.repeats)
            if args.no_exact:
                best, exact_note = float("nan"), "skipped"
            elif n <= args.exact_full_max:
                exact_s, exact = timed(lambda x=x, k=k: km.kmeans_1d_exact(x, k), 1)
                best, exact_note = exact.sse, f"{exact_s:.2f} s"
            else:
                exact_s, best = timed(lambda x=x, k=k: km._exact_sse(x, k), 1)
                exact_note = f"{exact_s:.1f} s (SSE only)"
            run_sklearn = args.sklearn == "all" or (args.sklearn == "default" and (n, k) in SKLEARN_DEFAULT)
            if run_sklearn:
                sk_s, sk_sse = sklearn_sse(x, k)
                sk = f"{sk_s:.1f} s", fmt_rel(sk_sse / best - 1), f"{sk_s / ours_s:,.0f}x"
            else:
                sk = "skipped", "", ""
            print(f"| {n:.0e} | {k} | {ours_s * 1e3:.1f} ms | {n / ours_s / 1e6:.1f} M | {fmt_rel(res.sse / best - 1)} "
                  f"| {sk[0]} | {sk[1]} | {sk[2]} | {exact_note} | {sort_s * 1e3:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
