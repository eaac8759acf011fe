"""The ``onnx-share`` command: a thin layer over the Python API (every flag maps onto the config)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onnx_share._version import __version__
from onnx_share.check.feeds import check_validation_inputs, parse_input_shapes
from onnx_share.config import (
    GRANULARITIES,
    PASS_ALIASES,
    PASS_NAMES,
    SCHEME_ALIASES,
    SCHEMES,
    OptimizeConfig,
    load_config,
)
from onnx_share.errors import OnnxShareError
from onnx_share.io.save import same_file
from onnx_share.targets.checks import TARGETS

if TYPE_CHECKING:
    from onnx_share.report.data import CompareReport, Report
    from onnx_share.targets.tensorrt import TensorRTOptions

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHECK_FAILED = 3

EXAMPLES = """examples:
  onnx-share optimize model.onnx small.onnx --bits 4
  onnx-share optimize model.onnx small.onnx --scheme uniform --bits 4 --check --report report.json
  onnx-share optimize model.onnx small.onnx --granularity channel --exclude '*embeddings*'
  onnx-share optimize bert.onnx bert4.onnx --input-shapes input_ids:[1,128] attention_mask:[1,128]
  onnx-share optimize model.onnx small.onnx --bits 4 --inputs batch.npz --report-html report.html
  onnx-share inspect model.onnx --bits 4
  onnx-share compare model.onnx small.onnx --inputs a.npz b.npz --report-html compare.html
  onnx-share compare model.onnx small.onnx --input-shapes input_ids:[1,128] --trt --fp16
  onnx-share check --target tensorrt small.onnx

exit codes: 0 ok, 1 error (bad input or options), 2 usage,
            3 --check failed, compare found an output outside the tolerances, or check found an error
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
    opt.add_argument("--report-html", metavar="FILE", help="write a self-contained HTML report here "
                     "(size per tensor, weight histograms, per-layer error chart; implies --layerwise)")
    opt.add_argument("--external-data", action="store_true", default=None,
                     help="store tensors in OUT.data beside OUT (automatic above 2 GB)")
    val = _add_validation_arguments(opt)
    val.add_argument("--layerwise", action=argparse.BooleanOptionalAction, default=None,
                     help="also compare every intermediate tensor both models share and name the first one "
                     "outside the tolerances (default: with --report-html)")
    val.add_argument("--no-validate", action="store_true", help="skip the onnxruntime comparison")
    val.add_argument("--check", action="store_true", help="exit 3 when an output fails the tolerances")
    _add_tensorrt_arguments(opt)
    opt.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: when stderr is a terminal)")
    opt.add_argument("-v", "--verbose", action="count", default=0, help="-v: INFO logs and tracebacks; -vv: DEBUG")

    ins = commands.add_parser("inspect", help="list weights, what would be compressed, estimated size")
    ins.add_argument("model")
    _add_spec_arguments(ins)
    ins.add_argument("--top", type=int, default=30, help="rows to show (default 30)")
    ins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ins.add_argument("-v", "--verbose", action="count", default=0)

    cmp = commands.add_parser(
        "compare",
        help="compare a rewritten model with its original, output by output and layer by layer",
        description="Run ORIGINAL and REWRITTEN in onnxruntime on the same inputs; report per-output errors, "
        "the first intermediate tensor (in topological order) outside the tolerances, and what happened to "
        "each weight. Exit 3 when an output is outside the tolerances or the TensorRT engine fails.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("original", help="the reference model")
    cmp.add_argument("rewritten", help="the model to check against it")
    val = _add_validation_arguments(cmp)
    val.add_argument("--seed", type=int, help="seed for generated inputs (default 0)")
    val.add_argument("--no-layerwise", action="store_true", help="compare the outputs only")
    cmp.add_argument("--report", metavar="FILE", help="write the JSON report here")
    cmp.add_argument("--report-html", metavar="FILE", help="write a self-contained HTML report here")
    _add_tensorrt_arguments(cmp)
    cmp.add_argument("-v", "--verbose", action="count", default=0)

    chk = commands.add_parser(
        "check",
        help="list what a runtime would reject or run slowly, one line per node (no GPU needed)",
        description="Static check of MODEL for a deployment target: TensorRT's ONNX parser limits (zero "
        "points, INT4 blocks, UINT8 tensors, Gather on 8/4-bit data, missing types) or onnxruntime's "
        "(loadable versions, DequantizeLinear not fused into MatMulNBits, DequantizeLinear into Conv). "
        "Exit 3 when an error is found (with --strict, also a warning).",
    )
    chk.add_argument("model")
    chk.add_argument("--target", required=True, choices=TARGETS)
    chk.add_argument("--strict", action="store_true", help="warnings fail the check too")
    chk.add_argument("--json", action="store_true", help="print JSON instead of lines")
    chk.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def _add_validation_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    val = parser.add_argument_group("validation")
    val.add_argument("--inputs", nargs="+", metavar="NPZ", help="input samples, one .npz per sample (arrays named "
                     "after the model inputs; other arrays are ignored)")
    val.add_argument("--input-shapes", nargs="+", metavar="NAME:[D,...]", help="shapes for dynamic inputs")
    val.add_argument("--samples", type=int, help="generated input samples (default 1)")
    val.add_argument("--atol", type=float, help="absolute tolerance per element (with --rtol: atol + rtol*|ref|)")
    val.add_argument("--rtol", type=float, help="relative tolerance per element")
    val.add_argument("--min-cosine", type=float, help="lowest cosine similarity per tensor (default 0.99)")
    val.add_argument("--min-top1", type=float, metavar="FRACTION",
                     help="lowest top-1 agreement of classification-shaped outputs (default: not checked)")
    return val


def _add_tensorrt_arguments(parser: argparse.ArgumentParser) -> None:
    trt = parser.add_argument_group("TensorRT (optional extra: pip install 'onnx-share[trt]', NVIDIA GPU)")
    trt.add_argument("--trt", action="store_true", help="build a TensorRT engine from the rewritten model through "
                     "Polygraphy, compare it with onnxruntime, and record engine size and latency")
    precision = trt.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="let TensorRT use FP16 kernels")
    precision.add_argument("--strongly-typed", action="store_true", help="strongly typed network: every tensor "
                           "keeps the model's type")


def _add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    spec = parser.add_argument_group("compression")
    bits = spec.add_mutually_exclusive_group()
    bits.add_argument("--bits", type=int, help="bits per weight index, 1-8 (uniform: 2, 4, 8); default 8")
    bits.add_argument("--clusters", type=int, metavar="K", help="codebook size k (2-256) instead of --bits")
    spec.add_argument("--scheme", choices=(*SCHEMES, *SCHEME_ALIASES), help="codebook: k-means centroids + "
                      "Gather (default); uniform: DequantizeLinear (lut: old name of codebook)")
    spec.add_argument("--granularity", choices=GRANULARITIES, help="codebook/scale per tensor, output channel "
                      "or group (auto: per tensor for codebook, blocks on MatMul/Gemm else channel for uniform)")
    spec.add_argument("--group-size", type=int, metavar="G", help="codebook: channels per codebook; "
                      "uniform: block length along the reduction axis (default 128)")
    spec.add_argument("--init", help="k-means seeding: optimal (exact, default), linear, density, random, kmeans++")
    spec.add_argument("--asymmetric", action="store_true", default=None, help="uniform: unsigned grid + zero point")
    spec.add_argument("--min-elements", type=int, metavar="N", help="leave tensors smaller than N (default 4096)")
    spec.add_argument("--include", nargs="+", metavar="GLOB", help="compress only tensors whose name matches")
    spec.add_argument("--exclude", nargs="+", metavar="GLOB", help="leave tensors whose name matches")
    spec.add_argument("--seed", type=int, help="seed for k-means and generated inputs (default 0)")
    spec.add_argument("--config", metavar="FILE", help="JSON/YAML config; flags given here override it")
    passes = parser.add_argument_group("passes")
    passes.add_argument("--passes", type=_pass_list, metavar="P1,P2", help="passes to run, in this order, from "
                        f"{','.join(PASS_NAMES)} (default: fold-qdq,share,compress, plus lowrank/prune when "
                        "their options are given, in that order)")
    passes.add_argument("--share-tolerance", type=float, metavar="REL", help="share: also merge tensors whose "
                        "relative difference is at most REL (default: identical only)")
    passes.add_argument("--no-share-transposed", action="store_true", help="share: do not merge transposed copies")
    rank = passes.add_mutually_exclusive_group()
    rank.add_argument("--rank", type=int, metavar="R", help="lowrank: split MatMul/Gemm weights at rank R")
    rank.add_argument("--rank-energy", type=float, metavar="E", help="lowrank: smallest rank keeping fraction E "
                      "of the squared singular values (e.g. 0.99)")
    rank.add_argument("--rank-error", type=float, metavar="REL", help="lowrank: smallest rank whose relative "
                      "weight error is at most REL")
    passes.add_argument("--rank-min-saving", type=float, metavar="F", help="lowrank: split only where it saves "
                        "at least fraction F of the weight's elements (default 0.2)")
    prune = passes.add_mutually_exclusive_group()
    prune.add_argument("--prune", type=float, metavar="FRACTION", help="prune: zero this fraction of the "
                       "smallest-magnitude weights of each tensor (or overall with --prune-scope global)")
    prune.add_argument("--prune-threshold", type=float, metavar="T", help="prune: zero weights with |w| <= T")
    passes.add_argument("--prune-scope", choices=("tensor", "global"), help="prune: one fraction per tensor "
                        "(default) or one magnitude cut across all selected tensors")
    passes.add_argument("--no-sparse", action="store_true", help="prune: keep pruned tensors dense on disk")


def _pass_list(text: str) -> tuple[str, ...]:
    names = tuple(PASS_ALIASES.get(p.strip(), p.strip()) for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PASS_NAMES]
    if unknown or not names:
        choices = ", ".join(PASS_NAMES)
        raise argparse.ArgumentTypeError(f"unknown pass {', '.join(unknown) or '(none)'}; choose from {choices}")
    return names


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
    if args.passes is not None:
        top["passes"] = args.passes
    sections = {
        "share": {"tolerance": args.share_tolerance, "transposed": False if args.no_share_transposed else None},
        "lowrank": {"rank": args.rank, "energy": args.rank_energy, "max_error": args.rank_error,
                    "min_saving": args.rank_min_saving},
        "prune": {"fraction": args.prune, "threshold": args.prune_threshold, "scope": args.prune_scope,
                  "sparse": False if args.no_sparse else None},
    }
    for key, changes in sections.items():
        given = {k: v for k, v in changes.items() if v is not None}
        if given:
            current = dataclasses.asdict(getattr(config, key))
            top[key] = getattr(OptimizeConfig.from_dict({key: {**current, **given}}), key)
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
    if getattr(args, "min_top1", None) is not None:
        changes["min_top1"] = args.min_top1
    if getattr(args, "no_layerwise", False):
        changes["layerwise"] = False
    elif getattr(args, "layerwise", None) is not None:
        changes["layerwise"] = args.layerwise
    elif getattr(args, "report_html", None):
        changes["layerwise"] = True
    return changes


def _tensorrt_options(args: argparse.Namespace) -> TensorRTOptions | None:
    if not args.trt:
        if args.fp16 or args.strongly_typed:
            raise OnnxShareError("--fp16 and --strongly-typed apply to the TensorRT build; add --trt")
        return None
    from onnx_share.targets.tensorrt import TensorRTOptions

    return TensorRTOptions(fp16=args.fp16, strongly_typed=args.strongly_typed)


def run_optimize(args: argparse.Namespace) -> int:
    from onnx_share.api import optimize

    if same_file(args.input, args.output):
        raise OnnxShareError(f"output {args.output} is the input file; choose another output path")
    config = config_from_args(args)
    tensorrt = _tensorrt_options(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if config.validation.enabled:  # before any work: unreadable input files or unknown input names
        check_validation_inputs(args.input, config.validation)
    result = optimize(args.input, config, progress=progress)
    result.save(args.output)
    result.report.command = args.command_line
    status = EXIT_OK
    if config.validation.enabled:
        validation = result.validate(config.validation)
        if args.check and not validation.passed:
            status = EXIT_CHECK_FAILED
    if tensorrt is not None:
        from onnx_share.targets.tensorrt import run_tensorrt

        target = run_tensorrt(args.output, config.validation, tensorrt)
        result.report.targets.append(target)
        if args.check and target.passed is False:
            status = EXIT_CHECK_FAILED
    written = _write_reports(result.report, args)
    print(result.report.summary())
    print(f"wrote {', '.join([str(args.output), *written])}")
    if status == EXIT_CHECK_FAILED:
        print("check failed: an output is outside the tolerances", file=sys.stderr)
    return status


def run_inspect(args: argparse.Namespace) -> int:
    from onnx_share.ir.inspection import format_rows, inspect_model, rows_as_dicts

    rows, summary = inspect_model(args.model, config_from_args(args))
    if args.json:
        print(json.dumps({"summary": summary, "tensors": rows_as_dicts(rows)}, indent=2))
    else:
        print(format_rows(rows, summary, args.top))
    return EXIT_OK


def run_compare(args: argparse.Namespace) -> int:
    from onnx_share.api import compare

    changes = _validation_changes(args)
    changes.setdefault("layerwise", True)
    config = OptimizeConfig.from_dict({"validation": changes}).validation
    report = compare(args.original, args.rewritten, config, tensorrt=_tensorrt_options(args),
                     command=args.command_line)
    written = _write_reports(report, args)
    print(report.summary())
    if written:
        print(f"wrote {', '.join(written)}")
    if not report.passed:
        print("compare failed: an output is outside the tolerances", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    from onnx_share.targets.checks import check_model

    findings = check_model(args.model, args.target)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    if args.json:
        print(json.dumps({"model": args.model, "target": args.target, "errors": errors, "warnings": warnings,
                          "findings": [dataclasses.asdict(f) for f in findings]}, indent=2))
    else:
        for finding in findings:
            print(finding.line())
        print(f"{args.target} check of {args.model}: {errors} error(s), {warnings} warning(s)")
    return EXIT_CHECK_FAILED if errors or (args.strict and warnings) else EXIT_OK


def _write_reports(report: Report | CompareReport, args: argparse.Namespace) -> list[str]:
    """Write the JSON and HTML reports the flags ask for; the paths written."""
    written = []
    if args.report:
        report.write_json(args.report)
        written.append(args.report)
    if args.report_html:
        from onnx_share.check.weight_diff import WeightDiff
        from onnx_share.io.proto import ProtoModel
        from onnx_share.report.data import CompareReport
        from onnx_share.report.html import write_html_report

        if isinstance(report, CompareReport):
            original, rewritten = report.original_path, report.rewritten_path
        else:
            original, rewritten = report.input_path, report.output_path
        if original and rewritten and report.compressed:
            diff = WeightDiff(ProtoModel.read(original), ProtoModel.read(rewritten))
            report.histograms = diff.histograms(report.compressed)
        write_html_report(report, args.report_html)
        written.append(args.report_html)
    return written


COMMANDS = {"optimize": run_optimize, "inspect": run_inspect, "compare": run_compare, "check": run_check}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["onnx-share", *argv])
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
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
