"""Plain numpy/numba numerics with no graph code: k-means, codebooks, uniform grids, Q/DQ rounding, low-rank splits,
pruning, error metrics.
"""
