"""onnx-share: shrink trained ONNX models by weight sharing (k-means codebooks, uniform grids)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("onnx-share")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

from onnx_share.comparison import compare
from onnx_share.config import OptimizeConfig, ValidationConfig, WeightSpec, load_config
from onnx_share.errors import OnnxShareError
from onnx_share.model_io import load_model, save_model
from onnx_share.optimize import OptimizeResult, optimize
from onnx_share.validation import compare_models

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
