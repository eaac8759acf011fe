"""``onnx-share check``: what a deployment target would reject or run slowly, one line per node (no GPU)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from onnx_share.cli import EXIT_CHECK_FAILED, EXIT_OK
from onnx_share.cli.args import VerbosityArgs
from onnx_share.targets import TARGETS

VERBOSITY = VerbosityArgs()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` command and its flags."""
    parser = subparsers.add_parser(
        "check",
        help="list what a runtime would reject or run slowly, one line per node (no GPU needed)",
        description="Static check of MODEL for a deployment target: TensorRT's ONNX parser limits (zero "
        "points, INT4 blocks, UINT8 tensors, Gather on 8/4-bit data, missing types) or onnxruntime's "
        "(loadable versions, DequantizeLinear not fused into MatMulNBits, DequantizeLinear into Conv). "
        "Exit 3 when an error is found (with --strict, also a warning).",
    )
    parser.add_argument("model")
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--strict", action="store_true", help="warnings fail the check too")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    VERBOSITY.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Print the findings for ``args.model``; exit 3 on an error (or, with ``--strict``, a warning)."""
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
