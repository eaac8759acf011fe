"""``onnx-share inspect``: list a model's weights, what would be compressed, and the estimated size."""

from __future__ import annotations

import argparse
import json

from onnx_share.cli import EXIT_OK
from onnx_share.cli.args import CompressionArgs, PassArgs, VerbosityArgs

COMPRESSION = CompressionArgs()
PASSES = PassArgs()
VERBOSITY = VerbosityArgs()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` command and its flags."""
    parser = subparsers.add_parser("inspect", help="list weights, what would be compressed, estimated size")
    parser.add_argument("model")
    COMPRESSION.add_to(parser)
    PASSES.add_to(parser)
    parser.add_argument("--top", type=int, default=30, help="rows to show (default 30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    VERBOSITY.add_to(parser)


def run(args: argparse.Namespace) -> int:
    """Print the weight table (or JSON) of ``args.model`` under the config the flags describe."""
    from onnx_share.passes.inspection import format_rows, inspect_model, rows_as_dicts

    rows, summary = inspect_model(args.model, PASSES.apply(args, COMPRESSION.load(args)))
    if args.json:
        print(json.dumps({"summary": summary, "tensors": rows_as_dicts(rows)}, indent=2))
    else:
        print(format_rows(rows, summary, args.top))
    return EXIT_OK
