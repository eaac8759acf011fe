"""The ``onnx-share`` command: a thin layer over the Python API (every flag maps onto the config)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from onnx_share import __version__
from onnx_share.config import GRANULARITIES, SCHEMES, OptimizeConfig, load_config
from onnx_share.errors import OnnxShareError
from onnx_share.model_io import same_file
from onnx_share.validation import check_validation_inputs, parse_input_shapes

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CHECK_FAILED = 3

EXAMPLES = """examples:
  onnx-share optimize model.onnx small.onnx --bits 4
  onnx-share optimize model.onnx small.onnx --scheme uniform --bits 4 --check --report report.json
  onnx-share optimize model.onnx small.onnx --granularity channel --exclude '*embeddings*'
  onnx-share optimize bert.onnx bert4.onnx --input-shapes input_ids:[1,128] attention_mask:[1,128]
  onnx-share inspect model.onnx --bits 4

exit codes: 0 ok, 1 error (bad input or options), 2 usage, 3 --check failed
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnx-share",
        description="Shrink trained ONNX models by weight sharing: k-means codebooks or uniform grids.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"onnx-share {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    opt = commands.add_parser(
        "optimize",
        help="compress a model's weights and validate the result",
        description="Compress weights of IN into OUT, then compare both in onnxruntime.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_argument("input", help="the ONNX model to read (never modified)")
    opt.add_argument("output", help="where to write the rewritten model")
    _add_spec_arguments(opt)
    opt.add_argument("--report", metavar="FILE", help="write the JSON report here")
    opt.add_argument("--external-data", action="store_true", default=None,
                     help="store tensors in OUT.data beside OUT (automatic above 2 GB)")
    val = opt.add_argument_group("validation")
    val.add_argument("--inputs", nargs="+", metavar="NPZ", help="input samples, one .npz per sample")
    val.add_argument("--input-shapes", nargs="+", metavar="NAME:[D,...]", help="shapes for dynamic inputs")
    val.add_argument("--samples", type=int, help="generated input samples (default 1)")
    val.add_argument("--no-validate", action="store_true", help="skip the onnxruntime comparison")
    val.add_argument("--check", action="store_true", help="exit 3 when an output fails the tolerances")
    val.add_argument("--atol", type=float, help="absolute tolerance per element (with --rtol: atol + rtol*|ref|)")
    val.add_argument("--rtol", type=float, help="relative tolerance per element")
    val.add_argument("--min-cosine", type=float, help="lowest cosine similarity per output (default 0.99)")
    opt.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: when stderr is a terminal)")
    opt.add_argument("-v", "--verbose", action="count", default=0, help="-v: INFO logs and tracebacks; -vv: DEBUG")

    ins = commands.add_parser("inspect", help="list weights, what would be compressed, estimated size")
    ins.add_argument("model")
    _add_spec_arguments(ins)
    ins.add_argument("--top", type=int, default=30, help="rows to show (default 30)")
    ins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ins.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def _add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    spec = parser.add_argument_group("compression")
    bits = spec.add_mutually_exclusive_group()
    bits.add_argument("--bits", type=int, help="bits per weight index, 1-8 (uniform: 2, 4, 8); default 8")
    bits.add_argument("--clusters", type=int, metavar="K", help="codebook size k (2-256) instead of --bits")
    spec.add_argument("--scheme", choices=SCHEMES, help="lut: k-means codebook + Gather (default); "
                      "uniform: DequantizeLinear")
    spec.add_argument("--granularity", choices=GRANULARITIES, help="codebook/scale per tensor, output channel "
                      "or group (auto: per tensor for lut, blocks on MatMul/Gemm else channel for uniform)")
    spec.add_argument("--group-size", type=int, metavar="G", help="lut: channels per codebook; "
                      "uniform: block length along the reduction axis (default 128)")
    spec.add_argument("--init", help="k-means seeding: optimal (exact, default), linear, density, random, kmeans++")
    spec.add_argument("--asymmetric", action="store_true", default=None, help="uniform: unsigned grid + zero point")
    spec.add_argument("--min-elements", type=int, metavar="N", help="leave tensors smaller than N (default 4096)")
    spec.add_argument("--include", nargs="+", metavar="GLOB", help="compress only tensors whose name matches")
    spec.add_argument("--exclude", nargs="+", metavar="GLOB", help="leave tensors whose name matches")
    spec.add_argument("--seed", type=int, help="seed for k-means and generated inputs (default 0)")
    spec.add_argument("--config", metavar="FILE", help="JSON/YAML config; flags given here override it")


def config_from_args(args: argparse.Namespace) -> OptimizeConfig:
    """The config file (if any) with every explicitly given flag applied on top."""
    config = load_config(args.config) if args.config else OptimizeConfig()
    spec_changes: dict[str, Any] = {}
    for flag, key in (("bits", "bits"), ("clusters", "clusters"), ("scheme", "scheme"),
                      ("granularity", "granularity"), ("group_size", "group_size"), ("init", "init")):
        if getattr(args, flag) is not None:
            spec_changes[key] = getattr(args, flag)
    if args.asymmetric:
        spec_changes["symmetric"] = False
    if args.bits is not None:
        spec_changes["clusters"] = None
    top: dict[str, Any] = {}
    if spec_changes:
        top["default"] = config.default.updated(spec_changes)
    if args.min_elements is not None:
        top["min_elements"] = args.min_elements
    if args.include:
        top["include"] = tuple(args.include)
    if args.exclude:
        top["exclude"] = tuple(args.exclude)
    if args.seed is not None:
        top["seed"] = args.seed
    if getattr(args, "external_data", None):
        top["external_data"] = True
    validation = _validation_changes(args)
    if validation:
        top["validation"] = OptimizeConfig.from_dict(
            {"validation": {**config.to_dict()["validation"], **validation}}
        ).validation
    return config.updated(**top) if top else config


def _validation_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if getattr(args, "inputs", None):
        changes["inputs"] = list(args.inputs)
    if getattr(args, "input_shapes", None):
        changes["input_shapes"] = {k: list(v) for k, v in parse_input_shapes(args.input_shapes).items()}
    for key in ("samples", "atol", "rtol", "min_cosine"):
        if getattr(args, key, None) is not None:
            changes[key] = getattr(args, key)
    if args.seed is not None:
        changes["seed"] = args.seed
    if getattr(args, "no_validate", False):
        changes["enabled"] = False
    return changes


def run_optimize(args: argparse.Namespace) -> int:
    from onnx_share.optimize import optimize

    if same_file(args.input, args.output):
        raise OnnxShareError(f"output {args.output} is the input file; choose another output path")
    config = config_from_args(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = optimize(args.input, config, progress=progress)
    if config.validation.enabled:
        check_validation_inputs(args.input, config.validation)
    result.save(args.output)
    status = EXIT_OK
    if config.validation.enabled:
        validation = result.validate(config.validation)
        if args.check and not validation.passed:
            status = EXIT_CHECK_FAILED
    if args.report:
        result.report.write_json(args.report)
    print(result.report.summary())
    print(f"wrote {args.output}" + (f" and {args.report}" if args.report else ""))
    if status == EXIT_CHECK_FAILED:
        print("check failed: an output is outside the tolerances", file=sys.stderr)
    return status


def run_inspect(args: argparse.Namespace) -> int:
    from onnx_share.inspection import format_rows, inspect_model, rows_as_dicts

    rows, summary = inspect_model(args.model, config_from_args(args))
    if args.json:
        print(json.dumps({"summary": summary, "tensors": rows_as_dicts(rows)}, indent=2))
    else:
        print(format_rows(rows, summary, args.top))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "optimize":
            return run_optimize(args)
        return run_inspect(args)
    except OnnxShareError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"onnx-share: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("onnx-share: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an input we did not foresee: still one line unless -v
        if args.verbose:
            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"onnx-share: error: {type(exc).__name__}: {first} (run with -v for details)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
