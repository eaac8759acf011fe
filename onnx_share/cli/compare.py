"""``onnx-share compare``: a rewritten model against its original, output by output and layer by layer."""

from __future__ import annotations

import argparse
import sys

from onnx_share.cli import EXAMPLES, EXIT_CHECK_FAILED, EXIT_NOT_VALIDATED, EXIT_OK
from onnx_share.cli.args import CompareValidationArgs, ReportArgs, TensorRTArgs, VerbosityArgs

VALIDATION = CompareValidationArgs()
REPORTS = ReportArgs("write a self-contained HTML report here")
TENSORRT = TensorRTArgs()
VERBOSITY = VerbosityArgs()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` command and its flags."""
    parser = subparsers.add_parser(
        "compare",
        help="compare a rewritten model with its original, output by output and layer by layer",
        description="Run ORIGINAL and REWRITTEN in onnxruntime on the same inputs; report per-output errors, "
        "the first intermediate tensor (in topological order) outside the tolerances, and what happened to "
        "each weight. Exit 3 when an output is outside the tolerances or the TensorRT engine fails.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("original", help="the reference model")
    parser.add_argument("rewritten", help="the model to check against it")
    VALIDATION.add_to(parser)
    REPORTS.add_to(parser)
    TENSORRT.add_to(parser)
    VERBOSITY.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Compare ``args.rewritten`` with ``args.original``; exit 3 when an output is outside the tolerances."""
    from onnx_share.api import compare
    from onnx_share.check.feeds import NotValidated

    REPORTS.check(args)
    try:
        report = compare(args.original, args.rewritten, VALIDATION.config(args), tensorrt=TENSORRT.options(args),
                         command=args.command_line)
    except NotValidated as exc:
        print(f"onnx-share: not validated: {exc}", file=sys.stderr)
        return EXIT_NOT_VALIDATED
    written = REPORTS.write(args, report)
    print(report.summary())
    if written:
        print(f"wrote {', '.join(written)}")
    if not report.passed:
        print("compare failed: an output is outside the tolerances", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK
