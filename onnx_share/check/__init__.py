"""Proof that a rewritten model still does its job: input feeds, onnxruntime runners, output metrics, layer-wise
comparison and weight differences.
"""
