"""Deployment targets: static checks of what each runtime rejects, and TensorRT engine builds via Polygraphy."""

# The names ``onnx-share check --target`` accepts; here, not in ``checks``, so the parser needs no numpy or onnx.
TARGETS: tuple[str, ...] = ("tensorrt", "onnxruntime")
