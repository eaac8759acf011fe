"""Plain-numpy numerics behind the graph passes: 1-D k-means and uniform quantization grids."""
