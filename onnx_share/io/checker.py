"""Structural checks with onnx's checker: what the input must pass to be read, what every output must pass to
be written."""

from __future__ import annotations

import os

import onnx

# Set on a loaded ``ir.Model``'s ``meta``: whether the input passed the full check (with strict shape
# inference); outputs get the full check only then, since a wrong declared shape in the input stays wrong.
FULL_CHECK_META_KEY = "onnx_share.full_check"


def checker_problem(model: onnx.ModelProto | str | os.PathLike, *, full: bool) -> str | None:
    """The first line of what onnx's checker finds wrong with ``model`` (a proto, or a path whose external data
    lies beside it), or None when it passes; ``full`` adds strict shape inference."""
    try:
        onnx.checker.check_model(model if isinstance(model, onnx.ModelProto) else os.fspath(model), full_check=full)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        text = str(exc).strip() or type(exc).__name__
        return " ".join(text.split())[:300]
    return None
