"""Calibration: a few real input samples, the activations each compressed weight multiplies, and their statistics.

* ``data``: the samples the user gives (``.npz`` files, folders of them, feed dicts), split into calibration and
  held-out samples.
* ``sites``: where a weight meets its activation (the input of a ``MatMul``/``Gemm``/``Conv``/recurrent op, the ids
  of a ``Gather``) and how the weight reads as a matrix of input features by outputs.
* ``statistics``: the original model run in onnxruntime one sample at a time, each site's activation accumulated
  into moments (XᵀX, E[x], E[x²]) or id counts, in bounded memory.
"""
