"""Speed and quality of ``kmeans_1d`` against scikit-learn's KMeans, the exact DP and one ``np.sort``.

The tensor is heavy-tailed like real weights: student-t (df=3) scaled by 0.02, float32, seeded. For each
size and k the table gives wall times (median of ``--repeats`` runs; numba JIT compilation excluded by a
warm-up call of every path first) and the SSE relative to the optimum:

* ``kmeans_1d`` (default ``init="optimal"``): seconds, weights/s, relative SSE.
* scikit-learn ``KMeans(n_clusters=k, n_init=10)`` on ``x.reshape(-1, 1)`` (the approach it replaces), run
  once, only where it finishes in reasonable time (see ``--sklearn``).
* ``kmeans_1d_exact``, the O(k u log u) DP on all ``u`` distinct values, which defines the optimum. Above
  ``--exact-full-max`` values only its optimal SSE is computed (``optimal_sse``: the DP's last layer, O(u)
  memory, same exact value, no labels) and its time is that of this SSE-only run.
* one ``np.sort`` of the tensor, the floor of any sorting approach.

With ``--accuracy`` it measures accuracy only, over several tensor kinds (``--tensors``) and seeds
(``--seeds``): per kind, size and k, the worst relative SSE over the seeds against ``optimal_sse``.

With ``--minilm PATH`` it times ``kmeans_1d`` on the weights of an ONNX model (float initializers of at
least ``--min-elements`` values, the optimizer's default selection) against one ``np.sort`` of each:
per tensor and in total, the median of ``--repeats`` alternating runs of both, and their ratio. With ``--rows`` as
well, one codebook per row of each 2-D weight: ``kmeans_rows`` (all rows in one kernel) against ``kmeans_1d`` row
by row (the same results, checked) and a row-wise ``np.sort``. With ``--many`` instead: ``kmeans_1d_many`` on all
``--ks`` at once against one ``kmeans_1d`` per k (the same results, checked), per tensor and in total.

    python tools/bench_kmeans.py                      # markdown table on stdout (~15-25 minutes)
    python tools/bench_kmeans.py --sizes 1e7 --sklearn none --no-exact   # timings only (seconds)
    python tools/bench_kmeans.py --sizes 1e5 --ks 16 --sklearn none --repeats 1   # smoke run (seconds)
    python tools/bench_kmeans.py --accuracy --sizes 2e5 1e6 --ks 16 64 256 --seeds 0 1 2 3   # ~15 minutes
    python tools/bench_kmeans.py --minilm tools/build/minilm.onnx --ks 16 256 --repeats 7   # ~1 minute
    python tools/bench_kmeans.py --minilm tools/build/minilm.onnx --many --ks 2 4 8 16 32 64 128 256 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from onnx_share.numerics.kmeans import (
    SORTED_MAX_N,
    STRATEGIES,
    kmeans_1d,
    kmeans_1d_exact,
    kmeans_1d_many,
    kmeans_rows,
    optimal_sse,
)

# (n, k) pairs on which scikit-learn runs with --sklearn=default: 1e5 all k, 1e6 only k=256 (minutes).
SKLEARN_DEFAULT = {(100_000, 16), (100_000, 256), (1_000_000, 256)}


def _pruned(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(0.0, 0.02, n)
    x[rng.random(n) < 0.3] = 0.0
    return x


def _with_outliers(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x[rng.choice(x.size, 8, replace=False)] = 15 * np.abs(x).max() * np.array([1, -1] * 4)
    return x


# Weight-like tensors (float64 draws, made float32): name -> (rng, n) -> values. Outliers are set after the cast.
TENSORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "student_t3": lambda rng, n: 0.02 * rng.standard_t(3, n),
    "student_t2": lambda rng, n: 0.02 * rng.standard_t(2, n),
    "gaussian": lambda rng, n: rng.normal(0.0, 0.02, n),
    "laplace": lambda rng, n: rng.laplace(0.0, 0.02, n),
    "pruned": _pruned,  # gaussian with 30% exact zeros
    "mixture": lambda rng, n: np.where(rng.random(n) < 0.7, rng.normal(0.0, 0.01, n), rng.normal(0.03, 0.005, n)),
    # laplace of std 0.02 and 8 values at +-15 times its largest magnitude
    "laplace_outliers": lambda rng, n: _with_outliers(rng.laplace(0.0, 0.02 / np.sqrt(2), n).astype(np.float32), rng),
}


def draw(n: int, seed: int = 0, kind: str = "student_t3") -> np.ndarray:
    """A float32 tensor of ``n`` values of the given kind (``TENSORS``), seeded."""
    return TENSORS[kind](np.random.default_rng(seed), n).astype(np.float32)


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
    x = draw(5_000, 1)
    for k in ks:
        for strategy in ("sorted", "histogram"):
            kmeans_1d(x, k, strategy=strategy)
        kmeans_1d_exact(x, k)
        optimal_sse(x, k)


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
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help=f"kmeans_1d's path: auto (default: sorted up to {SORTED_MAX_N} values, histogram "
                             "above), sorted or histogram")
    parser.add_argument("--accuracy", action="store_true",
                        help="accuracy only: worst relative SSE over --tensors and --seeds (no timings)")
    parser.add_argument("--tensors", nargs="+", choices=list(TENSORS), default=list(TENSORS),
                        help="tensor kinds of --accuracy (the timing table uses student_t3)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of --accuracy")
    parser.add_argument("--minilm", metavar="PATH",
                        help="time kmeans_1d against np.sort on the weights of this ONNX model (no accuracy)")
    parser.add_argument("--min-elements", type=int, default=4096,
                        help="--minilm: the smallest initializer timed (default 4096, the optimizer's own)")
    parser.add_argument("--rows", action="store_true",
                        help="--minilm: one codebook per row (the rows of each 2-D weight, as a per-channel codebook "
                        "clusters a [out, in] layout): kmeans_rows against kmeans_1d row by row and a row-wise sort")
    parser.add_argument("--many", action="store_true",
                        help="--minilm: kmeans_1d_many on all --ks at once against kmeans_1d once per k")
    args = parser.parse_args()
    ks = sorted(set(args.ks))
    warm_up(ks)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start; numpy {np.__version__}\n")
    if args.minilm and args.rows:
        rows_table(args, ks)
    elif args.minilm and args.many:
        many_table(args, ks)
    elif args.minilm:
        model_table(args, ks)
    elif args.accuracy:
        accuracy_table(args, ks)
    else:
        speed_table(args, ks)


def accuracy_table(args: argparse.Namespace, ks: list[int]) -> None:
    """Per tensor kind, size and k: the worst relative SSE of ``kmeans_1d`` over the seeds, and where."""
    print("| tensor | n | k | worst rel. SSE | at seed | median |")
    print("|---|---:|---:|---:|---:|---:|")
    overall = (-np.inf, "")
    for size in args.sizes:
        n = int(size)
        for kind in args.tensors:
            xs = [draw(n, seed, kind) for seed in args.seeds]
            for k in ks:
                rel = [kmeans_1d(x, k, strategy=args.strategy).sse / optimal_sse(x, k) - 1 for x in xs]
                worst = int(np.argmax(rel))
                overall = max(overall, (rel[worst], f"{kind}, n={n:.0e}, k={k}, seed {args.seeds[worst]}"))
                print(f"| {kind} | {n:.0e} | {k} | {fmt_rel(rel[worst])} | {args.seeds[worst]} "
                      f"| {fmt_rel(float(np.median(rel)))} |", flush=True)
    print(f"\nworst: {fmt_rel(overall[0])} ({overall[1]})")


def model_weights(path: str, min_elements: int) -> list[tuple[str, np.ndarray]]:
    """The float initializers of an ONNX model with at least ``min_elements`` values, in graph order."""
    import onnx
    from onnx import numpy_helper

    arrays = ((init.name, numpy_helper.to_array(init)) for init in onnx.load(path).graph.initializer)
    return [(name, a) for name, a in arrays if a.dtype.kind == "f" and a.size >= min_elements]


def alternating_medians(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each function over ``repeats`` rounds that call them in turn (shared noise)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def model_table(args: argparse.Namespace, ks: list[int]) -> None:
    """Per weight of the model and in total: ``np.sort`` and ``kmeans_1d`` per k, and their ratio."""
    weights = model_weights(args.minilm, args.min_elements)
    print(f"{args.minilm}: {len(weights)} float initializers of at least {args.min_elements} values, "
          f"{sum(a.size for _, a in weights):,} values; median of {args.repeats} alternating runs\n")
    print("| tensor | shape | np.sort | " + " | ".join(f"k={k} | ratio" for k in ks) + " |")
    print("|---|---|---:|" + "---:|---:|" * len(ks))

    def timed_fns(a: np.ndarray) -> list[Callable[[], object]]:
        for k in ks:
            kmeans_1d(a, k, strategy=args.strategy)  # any first-call cost stays out of the timing
        return [lambda: np.sort(a, axis=None)] + [lambda k=k: kmeans_1d(a, k, strategy=args.strategy) for k in ks]

    timing_rows(weights, timed_fns, args.repeats, "x".join)


def rows_table(args: argparse.Namespace, ks: list[int]) -> None:
    """Per 2-D weight of the model, a codebook per row: ``np.sort`` of each row, ``kmeans_rows`` and ``kmeans_1d``
    row by row per k (median of alternating runs), and that every row's result is the same."""
    weights = [(name, a) for name, a in model_weights(args.minilm, args.min_elements) if a.ndim == 2]
    print(f"{args.minilm}: {len(weights)} 2-D float initializers, one codebook per row; median of {args.repeats} "
          "alternating runs\n")
    print("| tensor | rows x values | np.sort rows | "
          + " | ".join(f"k={k} kmeans_rows | ratio | row by row | ratio" for k in ks) + " |")
    print("|---|---|---:|" + "---:|---:|---:|---:|" * len(ks))

    def timed_fns(a: np.ndarray) -> list[Callable[[], object]]:
        fns: list[Callable[[], object]] = [lambda: np.sort(a, axis=1)]
        for k in ks:
            batched, single = kmeans_rows(a, k), [kmeans_1d(row, k) for row in a]
            assert all(np.array_equal(batched.labels[g], r.labels) for g, r in enumerate(single))
            fns += [lambda k=k: kmeans_rows(a, k), lambda k=k: [kmeans_1d(row, k) for row in a]]
        return fns

    timing_rows(weights, timed_fns, args.repeats, " x ".join)


def many_table(args: argparse.Namespace, ks: list[int]) -> None:
    """Per weight of the model and in total: ``kmeans_1d`` once per k, and ``kmeans_1d_many`` on all k (median of
    alternating runs, the ratio to the first), and that every k's result is the same."""
    weights = model_weights(args.minilm, args.min_elements)
    print(f"{args.minilm}: {len(weights)} float initializers of at least {args.min_elements} values, k in {ks}; "
          f"median of {args.repeats} alternating runs\n")
    print("| tensor | shape | kmeans_1d per k | kmeans_1d_many | ratio |")
    print("|---|---|---:|---:|---:|")

    def timed_fns(a: np.ndarray) -> list[Callable[[], object]]:
        each = [kmeans_1d(a, k, strategy=args.strategy) for k in ks]
        together = kmeans_1d_many(a, ks, strategy=args.strategy)
        assert all(np.array_equal(x.labels, y.labels) and np.array_equal(x.centroids, y.centroids)
                   for x, y in zip(each, together, strict=True))
        return [lambda: [kmeans_1d(a, k, strategy=args.strategy) for k in ks],
                lambda: kmeans_1d_many(a, ks, strategy=args.strategy)]

    timing_rows(weights, timed_fns, args.repeats, "x".join)


def timing_rows(weights: list[tuple[str, np.ndarray]], timed_fns: Callable[[np.ndarray], list[Callable[[], object]]],
                repeats: int, shape_text: Callable[[list[str]], str]) -> None:
    """One table row per weight (the median time of each of its functions, the first the reference, and each
    other's ratio to it), then the totals."""
    total: np.ndarray | None = None
    for name, a in weights:
        times = np.array(alternating_medians(timed_fns(a), repeats))
        total = times if total is None else total + times
        cells = " | ".join(f"{t * 1e3:.1f} ms | {t / times[0]:.1f}x" for t in times[1:])
        print(f"| {name} | {shape_text([str(d) for d in a.shape])} | {times[0] * 1e3:.1f} ms | {cells} |", flush=True)
    assert total is not None
    cells = " | ".join(f"{t * 1e3:.0f} ms | {t / total[0]:.2f}x" for t in total[1:])
    print(f"| **total** ({len(weights)}) | | {total[0] * 1e3:.0f} ms | {cells} |")


def speed_table(args: argparse.Namespace, ks: list[int]) -> None:
    """The timing table on student-t (df=3) tensors, with scikit-learn and the exact DP."""
    print("| n | k | kmeans_1d | weights/s | rel. SSE | scikit-learn KMeans (n_init=10) | its rel. SSE | speed-up "
          "| exact DP | np.sort |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        n = int(size)
        x = draw(n)
        sort_s, _ = timed(lambda x=x: np.sort(x), args.repeats)
        for k in ks:
            ours_s, res = timed(lambda x=x, k=k: kmeans_1d(x, k, strategy=args.strategy), args.repeats)
            if args.no_exact:
                best, exact_note = float("nan"), "skipped"
            elif n <= args.exact_full_max:
                exact_s, exact = timed(lambda x=x, k=k: kmeans_1d_exact(x, k), 1)
                best, exact_note = exact.sse, f"{exact_s:.2f} s"
            else:
                exact_s, best = timed(lambda x=x, k=k: optimal_sse(x, k), 1)
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
