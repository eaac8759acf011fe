"""``onnx-share optimize``: compress a model's weights, save it, validate it, write the reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from onnx_share.cli import EXAMPLES, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_NOT_VALIDATED, EXIT_OK
from onnx_share.cli.args import (
    BudgetArgs,
    CalibrationArgs,
    CompressionArgs,
    OptimizeValidationArgs,
    PassArgs,
    ReportArgs,
    TensorRTArgs,
    VerbosityArgs,
)
from onnx_share.errors import OnnxShareError

COMPRESSION = CompressionArgs()
PASSES = PassArgs()
CALIBRATION = CalibrationArgs()
BUDGET = BudgetArgs()
REPORTS = ReportArgs("write a self-contained HTML report here (size per tensor, weight histograms, per-layer "
                     "error chart; implies --layerwise)")
VALIDATION = OptimizeValidationArgs()
TENSORRT = TensorRTArgs()
VERBOSITY = VerbosityArgs("-v: INFO logs and tracebacks; -vv: DEBUG")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``optimize`` command and its flags."""
    parser = subparsers.add_parser(
        "optimize",
        help="compress a model's weights and validate the result",
        description="Compress weights of IN into OUT, then compare both in onnxruntime.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="the ONNX model to read (never modified)")
    parser.add_argument("output", help="where to write the rewritten model")
    COMPRESSION.add_to(parser)
    PASSES.add_to(parser)
    CALIBRATION.add_to(parser)
    BUDGET.add_to(parser)
    REPORTS.add_to(parser)
    parser.add_argument("--save-config", metavar="PATH", help="write the config that made OUT (.json, .yaml): "
                        "after a budget search, one override per weight, so it rebuilds OUT without searching")
    parser.add_argument("--external-data", action=argparse.BooleanOptionalAction, default=None,
                        help="store tensors in OUT.data beside OUT (default: when the input keeps its tensors in "
                        "external data, or OUT would be over 2 GB); --no-external-data writes one file where it fits")
    VALIDATION.add_to(parser)
    TENSORRT.add_to(parser)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    VERBOSITY.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Optimize ``args.input`` into ``args.output``; exit 3 when ``--check`` finds a failure."""
    from onnx_share.api import optimize
    from onnx_share.check.feeds import NotValidated, check_validation_inputs
    from onnx_share.config import config_text
    from onnx_share.io.save import check_output_path, same_file, write_text

    if same_file(args.input, args.output):
        raise OnnxShareError(f"output {args.output} is the input file; choose another output path")
    config = BUDGET.apply(args, CALIBRATION.apply(args, PASSES.apply(args, COMPRESSION.load(args))))
    if args.external_data is not None:
        config = config.updated(external_data=args.external_data)
    config = VALIDATION.apply(args, config, layerwise_default=REPORTS.wants_layerwise(args))
    tensorrt = TENSORRT.options(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    check_output_path(Path(args.output))  # before any work: every output path, every input file
    REPORTS.check(args)
    if args.save_config is not None:
        check_output_path(Path(args.save_config))
    if config.validation.enabled:
        check_validation_inputs(args.input, config.validation)
    if config.calibration.data:
        from onnx_share.calibration.data import data_files

        data_files(config.calibration.data)
    result = optimize(args.input, config, progress=progress, scratch=Path(args.output).parent)
    result.save(args.output)
    result.report.command = args.command_line
    strict = VALIDATION.exit_on_failure(args)
    status, problem = EXIT_OK, None
    if config.validation.enabled:
        try:
            validation = result.validate(config.validation)
        except NotValidated as exc:  # OUT stays: it was written and passed the checker
            status, problem = EXIT_NOT_VALIDATED, f"not validated: {exc}"
        except OnnxShareError as exc:
            status, problem = EXIT_ERROR, f"validation failed: {exc}"
        else:
            if strict and not validation.passed:
                status = EXIT_CHECK_FAILED
        if problem is not None:
            result.report.notes.append(problem)
    if tensorrt is not None:
        from onnx_share.targets.tensorrt import run_tensorrt

        target = run_tensorrt(args.output, config.validation, tensorrt)
        result.report.targets.append(target)
        if strict and target.passed is False:
            status = EXIT_CHECK_FAILED
    written = REPORTS.write(args, result.report)
    if args.save_config is not None:
        written.append(str(write_text(args.save_config, config_text(result.config, args.save_config))))
    print(result.report.summary())
    print(f"wrote {', '.join([str(args.output), *written])}")
    if status == EXIT_CHECK_FAILED:
        print("check failed: an output is outside the tolerances", file=sys.stderr)
    if problem is not None:
        print(f"onnx-share: {problem}", file=sys.stderr)
    return status
