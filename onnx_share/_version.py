"""The installed package version, read once from its metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("onnx-share")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
