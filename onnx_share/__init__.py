"""onnx-share: shrink trained ONNX models by weight sharing (k-means codebooks, uniform grids).

The names below are imported on first use (PEP 562), so ``import onnx_share`` and ``onnx-share --help`` load
neither onnxruntime, Polygraphy, numba nor onnx-ir.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from onnx_share._version import __version__

if TYPE_CHECKING:
    from onnx_share.api import OptimizeResult, compare, optimize
    from onnx_share.check.validation import compare_models
    from onnx_share.config import OptimizeConfig, ValidationConfig, WeightSpec, load_config
    from onnx_share.errors import OnnxShareError
    from onnx_share.io.load import load_model
    from onnx_share.io.save import save_model

# public name -> module that defines it
_EXPORTS = {
    "OnnxShareError": "onnx_share.errors",
    "OptimizeConfig": "onnx_share.config",
    "ValidationConfig": "onnx_share.config",
    "WeightSpec": "onnx_share.config",
    "load_config": "onnx_share.config",
    "OptimizeResult": "onnx_share.api",
    "optimize": "onnx_share.api",
    "compare": "onnx_share.api",
    "compare_models": "onnx_share.check.validation",
    "load_model": "onnx_share.io.load",
    "save_model": "onnx_share.io.save",
}

__all__ = [
    "OnnxShareError",
    "OptimizeConfig",
    "OptimizeResult",
    "ValidationConfig",
    "WeightSpec",
    "__version__",
    "compare",
    "compare_models",
    "load_config",
    "load_model",
    "optimize",
    "save_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'onnx_share' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
