"""Top-1 accuracy of a digits CNN ONNX model on the held-out split in ``digits_test.npz``.

Plain numpy + onnxruntime (no torch), so tests and benchmarks can score an original or a
compressed model::

    python models/digits_cnn/evaluate.py models/digits_cnn/digits_cnn.onnx
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

TEST_DATA = Path(__file__).resolve().parent / "digits_test.npz"


def load_test_data() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(input, label)``: float32 [N,1,8,8] in [0,1] and int64 [N]."""
    with np.load(TEST_DATA) as data:
        return data["input"].astype(np.float32), data["label"].astype(np.int64)


def accuracy(model_path: str | os.PathLike) -> float:
    """Run the model (input ``input``, first output = logits) on the test split; return top-1 accuracy."""
    x, y = load_test_data()
    sess = ort.InferenceSession(os.fspath(model_path), providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    logits = sess.run(None, {input_name: x})[0]
    return float((np.asarray(logits).argmax(axis=1) == y).mean())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {Path(__file__).name} MODEL.onnx", file=sys.stderr)
        return 2
    print(f"{accuracy(args[0]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
