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
# glibc's malloc serves an allocation above this from its own mapping, returned on free. Left to itself it raises
# the threshold after each such free (up to 32 MB) and keeps the freed blocks of tensor-sized arrays in its heaps:
# MiniLM at --jobs 2 peaked at 315 MB with the default, 296 MB with this fixed (docs/BENCHMARKS.md).
MMAP_THRESHOLD_BYTES = 128 * 1024
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


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
    _return_freed_arrays()
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


def _return_freed_arrays() -> None:
    """Fix glibc's mmap threshold for this process (the command owns it; the Python API leaves its caller's
    allocator alone), so freed arrays go back to the system; nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return


if __name__ == "__main__":
    sys.exit(main())

