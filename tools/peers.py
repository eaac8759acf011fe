"""Compress an ONNX model with a peer tool, to compare sizes and task scores against onnx-share's.

Peers live in their own virtualenv so the main environment (torch, onnx, onnxruntime, numpy) is untouched;
this pulls only nncf, onnxsim, ninja, openvino-telemetry, pydot and tabulate and reuses the rest::

    python3 -m venv /tmp/peers-venv --system-site-packages
    /tmp/peers-venv/bin/pip install nncf==3.4.0 onnxsim==0.8.1

Methods (``--data`` is required where marked *). All of them only touch MatMul (ort) or MatMul/Gemm (nncf,
onnxsim; NNCF also Gather embeddings and, as INT8 backup, Conv) with a constant 2-D weight:

* ``ort-rtn`` / ``ort-rtn-b128``: onnxruntime ``MatMulNBitsQuantizer`` with its default config (what its own
  CLI runs: round-to-nearest absmax, block 32, symmetric); block 32 / 128. MatMul -> com.microsoft
  MatMulNBits; Gemm is not supported. ``--bits`` 2, 4 or 8.
* ``ort-gptq`` *: the same quantizer with ``GPTQWeightOnlyQuantConfig`` (its defaults), 4 bits, block 32,
  asymmetric: onnxruntime 1.32 re-rounds symmetric GPTQ weights onto a different grid (worse than RTN), and
  its asymmetric packing crashes when a weight has an odd number of blocks (K=200 at 32, K=384 at 128).
* ``nncf-int4`` / ``nncf-int4-asym``: NNCF data-free INT4 sym / asym, group 128 (weights whose K is not a
  multiple get the largest power of two >= 32 that divides K, else INT8), NNCF's default INT8_ASYM
  per-channel backup for embeddings, the last layer and Conv. Opset < 21 gives MatMulNBits (repaired here,
  see ``_fix_nncf_matmulnbits``), opset >= 21 DequantizeLinear with int4 weights.
* ``nncf-int4-awq-se`` *: as ``nncf-int4`` plus AWQ and scale estimation on the feeds (AWQ only where it
  finds its MatMul->MatMul patterns; it says so in the log otherwise).
* ``nncf-int4-gptq`` *: as ``nncf-int4`` plus GPTQ, which NNCF 3.4 refuses for ONNX models.
* ``onnxsim-kmeans``: onnxsim ``quantize_weight_only_kmeans``: one 16-level k-means codebook per weight,
  written back as float32 (no size gain), one copy per consuming node (shared weights grow).
* ``onnxsim-squeezellm`` *: onnxsim ``quantize_weight_only_squeezellm``: sensitivity-weighted 16-level
  codebooks per 32-block, 0.45% outliers exact, as GatherND over int64 codes plus a dense float32
  correction (the file grows); it skips weights whose activation is not 2-D, so transformers are untouched.

Before a peer runs, tensor ``Constant`` nodes become initializers (peers only compress initializers); after,
unused initializers are dropped, a missing com.microsoft opset import is added and the result must pass
``onnx.checker``.

    /tmp/peers-venv/bin/python tools/peers.py ort-rtn in.onnx out.onnx
    /tmp/peers-venv/bin/python tools/peers.py nncf-int4-awq-se in.onnx out.onnx --data feeds/ more.npz

``--data`` takes .npz files (arrays named after model inputs, one sample each) or folders of them (all
``*.npz``, sorted).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx

Feeds = list[dict[str, np.ndarray]]
TWO_GB = 2**31 - 1


def _ort_default(block: int) -> Callable[[onnx.ModelProto, Feeds | None, int], onnx.ModelProto]:
    def run(model: onnx.ModelProto, feeds: Feeds | None, bits: int) -> onnx.ModelProto:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block, is_symmetric=True)
        quantizer.process()
        return quantizer.model.model

    return run


def _ort_gptq(model: onnx.ModelProto, feeds: Feeds | None, bits: int) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.matmul_nbits_quantizer import GPTQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    if bits != 4:
        raise ValueError("ort-gptq: onnxruntime's GPTQ path is 4-bit only")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it: Iterator[dict[str, np.ndarray]] = iter(feeds or [])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    config = GPTQWeightOnlyQuantConfig(calibration_data_reader=Reader())
    quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=32, is_symmetric=False, algo_config=config)
    quantizer.process()
    return quantizer.model.model


def _nncf(sym: bool, **options: bool) -> Callable[[onnx.ModelProto, Feeds | None, int], onnx.ModelProto]:
    def run(model: onnx.ModelProto, feeds: Feeds | None, bits: int) -> onnx.ModelProto:
        import nncf

        if bits != 4:
            raise ValueError("nncf-int4*: 4 bits only")
        mode = nncf.CompressWeightsMode.INT4_SYM if sym else nncf.CompressWeightsMode.INT4_ASYM
        advanced = nncf.AdvancedCompressionParameters(group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST)
        dataset = nncf.Dataset(feeds) if options else None
        out = nncf.compress_weights(
            model, mode=mode, group_size=128, dataset=dataset, advanced_parameters=advanced, **options
        )
        return _fix_nncf_matmulnbits(out)

    return run


def _fix_nncf_matmulnbits(model: onnx.ModelProto) -> onnx.ModelProto:
    """Repair two defects of NNCF 3.4's MatMulNBits output (opset < 21) so onnxruntime runs it as meant.

    * A MatMul followed by ``Add(bias)`` gets the bias as MatMulNBits input 5 while the Add stays: the bias
      counts twice. The bias input is dropped.
    * Asymmetric zero points are written one per byte, ``[N, n_blocks]``; MatMulNBits wants two 4-bit values
      per byte, ``[N, ceil(n_blocks / 2)]``, and onnxruntime refuses the model. They are packed.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    added = {(a, b) for n in model.graph.node if n.op_type == "Add" for a in n.input for b in n.input}
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        if len(node.input) == 6 and (node.output[0], node.input[5]) in added:
            del node.input[5]
        attrs = {a.name: a.i for a in node.attribute}
        zp = inits.get(node.input[3]) if len(node.input) > 3 else None
        if zp is not None and zp.dims[1] == -(-attrs["K"] // attrs["block_size"]):  # unpacked
            z = numpy_helper.to_array(zp)
            z = np.pad(z, ((0, 0), (0, z.shape[1] % 2)))
            zp.CopyFrom(numpy_helper.from_array(z[:, 0::2] | (z[:, 1::2] << 4), zp.name))
        while node.input and not node.input[-1]:
            del node.input[-1]
    return model


def _onnxsim_kmeans(model: onnx.ModelProto, feeds: Feeds | None, bits: int) -> onnx.ModelProto:
    import onnxsim

    return onnxsim.quantize_weight_only_kmeans(model, bits=bits)


def _onnxsim_squeezellm(model: onnx.ModelProto, feeds: Feeds | None, bits: int) -> onnx.ModelProto:
    import onnxsim

    return onnxsim.quantize_weight_only_squeezellm(model, calibration_data=feeds, bits=bits)


# name -> (compressor, needs data)
METHODS: dict[str, tuple[Callable[[onnx.ModelProto, Feeds | None, int], onnx.ModelProto], bool]] = {
    "ort-rtn": (_ort_default(32), False),
    "ort-rtn-b128": (_ort_default(128), False),
    "ort-gptq": (_ort_gptq, True),
    "nncf-int4": (_nncf(sym=True), False),
    "nncf-int4-asym": (_nncf(sym=False), False),
    "nncf-int4-awq-se": (_nncf(sym=True, awq=True, scale_estimation=True), True),
    "nncf-int4-gptq": (_nncf(sym=True, gptq=True), True),
    "onnxsim-kmeans": (_onnxsim_kmeans, False),
    "onnxsim-squeezellm": (_onnxsim_squeezellm, True),
}


def compress(method: str, model: Path, out: Path, feeds: Feeds | None, bits: int = 4) -> None:
    """Compress ``model`` with peer ``method`` into the single file ``out`` (external data only over 2 GB)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    run, needs_data = METHODS[method]
    if needs_data and not feeds:
        raise ValueError(f"{method} needs calibration feeds (--data)")
    proto = onnx.load(model)
    _constants_to_initializers(proto.graph)
    with contextlib.redirect_stdout(sys.stderr):  # progress bars; stdout keeps only the summary
        result = run(proto, feeds, bits)
    used = _used_names(result.graph)  # onnxsim-kmeans leaves the replaced weights behind
    kept = [t for t in result.graph.initializer if t.name in used]
    del result.graph.initializer[:]
    result.graph.initializer.extend(kept)
    imported = {o.domain for o in result.opset_import}
    for domain in {n.domain for n in result.graph.node} - imported - {"", "ai.onnx"}:
        result.opset_import.append(onnx.helper.make_opsetid(domain, 1))  # NNCF and ort-gptq omit com.microsoft
    big = result.ByteSize() > TWO_GB
    onnx.save(result, out, save_as_external_data=big, location=f"{out.name}.data" if big else None)
    try:
        onnx.checker.check_model(out)
    except onnx.checker.ValidationError as e:
        out.unlink()
        out.with_name(f"{out.name}.data").unlink(missing_ok=True)
        raise ValueError(f"{method} produced an invalid model: {e}") from e


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Turn tensor ``Constant`` nodes into initializers: the peers only see weights stored as initializers."""
    nodes = []
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Names read by the nodes (subgraphs included) or outputs of ``graph``."""
    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                names |= _used_names(sub)
    return names


def file_bytes(path: Path) -> int:
    """Bytes of an .onnx file plus the external data files it names."""
    model = onnx.load(path, load_external_data=False)
    files = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    return path.stat().st_size + sum((path.parent / f).stat().st_size for f in files)


def load_feeds(paths: list[Path]) -> Feeds:
    """One feed dict per .npz file; a folder stands for its ``*.npz`` files, sorted."""
    files = [f for p in paths for f in (sorted(p.glob("*.npz")) if p.is_dir() else [p])]
    feeds = []
    for f in files:
        with np.load(f) as z:
            feeds.append({k: z[k] for k in z.files})
    return feeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("method", choices=list(METHODS))
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, nargs="+", default=[], help=".npz feed files or folders of them")
    parser.add_argument("--bits", type=int, default=4)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        compress(args.method, args.model, args.out, load_feeds(args.data) or None, args.bits)
    except Exception as e:
        print(f"{args.method}: error: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    size_in, size_out = file_bytes(args.model), file_bytes(args.out)
    print(
        f"{args.method} in={size_in} out={size_out} ratio={size_in / size_out:.2f}x "
        f"seconds={seconds:.1f} model={args.model.name}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
