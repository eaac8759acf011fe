"""The ``onnx-share`` entry point: the parser built from the command modules, logging, and errors as one line."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import traceback
from collections.abc import Sequence

from onnx_share._version import __version__
from onnx_share.cli import EXAMPLES, EXIT_ERROR, check, compare, inspect, optimize
from onnx_share.cli.args import VerbosityArgs
from onnx_share.errors import OnnxShareError, first_line

COMMANDS = {"optimize": optimize, "inspect": inspect, "compare": compare, "check": check}
VERBOSITY = VerbosityArgs()  # every command adds -v; this reads it
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``onnx-share`` parser with every command's subparser."""
    parser = argparse.ArgumentParser(
        prog="onnx-share",
        description="Shrink trained ONNX models by weight sharing: k-means codebooks or uniform grids.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"onnx-share {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status (an error is one line on stderr, with its traceback only with -v)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["onnx-share", *argv])
    logging.basicConfig(level=VERBOSITY.log_level(args), format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command].run(args)
    except OnnxShareError as exc:
        if VERBOSITY.tracebacks(args):
            traceback.print_exc()
        print(f"onnx-share: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("onnx-share: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an input we did not foresee: still one line unless -v
        if VERBOSITY.tracebacks(args):
            traceback.print_exc()
        first = first_line(exc)
        print(f"onnx-share: error: {type(exc).__name__}: {first} (run with -v for details)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
