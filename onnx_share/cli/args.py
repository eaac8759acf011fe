"""Argument groups: each adds its own flags to a parser and reads them back into library objects.

A group reads only the attributes it added, and a command is a few lines gluing groups together. Every value
goes through :class:`~onnx_share.config.OptimizeConfig` (``from_dict``, ``updated``, ``WeightSpec.updated``), so a
flag is checked exactly as the same key in a config file would be.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnx_share.config import (
    GRANULARITIES,
    LOSS_METRICS,
    PASS_ALIASES,
    PASS_NAMES,
    RUNTIMES,
    SCHEME_ALIASES,
    SCHEMES,
    OptimizeConfig,
    ValidationConfig,
    load_config,
)
from onnx_share.errors import OnnxShareError

if TYPE_CHECKING:
    from onnx_share.report.data import CompareReport, Report
    from onnx_share.targets.tensorrt import TensorRTOptions

SPEC_FLAGS = ("bits", "clusters", "scheme", "granularity", "group_size", "init")
VALIDATION_FLAGS = ("samples", "atol", "rtol", "min_cosine", "min_top1")


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The flags among ``names`` that were given (not None), by name."""
    return {name: value for name in names if (value := getattr(args, name)) is not None}


def updated_section(config: OptimizeConfig, key: str, changes: Mapping[str, Any]) -> OptimizeConfig:
    """``config`` with the non-None ``changes`` applied to one section (``share``, ``lowrank``, ``prune`` or
    ``validation``), checked as the same keys in a config file would be."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return config
    current = dataclasses.asdict(getattr(config, key))
    section = getattr(OptimizeConfig.from_dict({key: {**current, **changes}}), key)
    return config.updated(**{key: section})


class CompressionArgs:
    """The ``compression`` group: the default weight spec, tensor selection, seed and ``--config``."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the group's flags to ``parser``."""
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
        spec.add_argument("--init", help="k-means seeding: optimal (exact, default), linear, density, random, "
                          "kmeans++")
        spec.add_argument("--asymmetric", action="store_true", default=None,
                          help="uniform: unsigned grid + zero point")
        spec.add_argument("--target", choices=RUNTIMES, help="runtime the output is for: portable (standard ONNX "
                          "ops, default), onnxruntime (quantized embedding tables read by com.microsoft "
                          "GatherBlockQuantized), tensorrt (symmetric grids, INT4 blocks of 64/128)")
        spec.add_argument("--jobs", type=int, metavar="N", help="threads for per-tensor work (default: every core; "
                          "the output is the same for any N)")
        spec.add_argument("--min-elements", type=int, metavar="N", help="leave tensors smaller than N (default 4096)")
        spec.add_argument("--include", nargs="+", metavar="GLOB", help="compress only tensors whose name matches")
        spec.add_argument("--exclude", nargs="+", metavar="GLOB", help="leave tensors whose name matches")
        spec.add_argument("--seed", type=int, help="seed for k-means and generated inputs (default 0)")
        spec.add_argument("--config", metavar="FILE", help="JSON/YAML config; flags given here override it")

    def load(self, args: argparse.Namespace) -> OptimizeConfig:
        """The config file (if any) with every compression flag given applied on top; ``--seed`` seeds the
        generated validation inputs too."""
        config = load_config(args.config) if args.config else OptimizeConfig()
        spec = given(args, SPEC_FLAGS)
        if args.asymmetric:
            spec["symmetric"] = False
        if args.bits is not None:
            spec["clusters"] = None
        top: dict[str, Any] = {}
        if spec:
            top["default"] = config.default.updated(spec)
        if args.min_elements is not None:
            top["min_elements"] = args.min_elements
        if args.target is not None:
            top["target"] = args.target
        if args.jobs is not None:
            top["jobs"] = args.jobs
        if args.include:
            top["include"] = tuple(args.include)
        if args.exclude:
            top["exclude"] = tuple(args.exclude)
        if args.seed is not None:
            top["seed"] = args.seed
        config = config.updated(**top) if top else config
        return updated_section(config, "validation", {"seed": args.seed})


class PassArgs:
    """The ``passes`` group: the pass list and the options of share, lowrank and prune."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the group's flags to ``parser``."""
        passes = parser.add_argument_group("passes")
        passes.add_argument("--passes", type=pass_list, metavar="P1,P2", help="passes to run, in this order, from "
                            f"{','.join(PASS_NAMES)} (default: fold-shapes,fold-qdq,share,compress, plus lowrank/prune "
                            "when their options are given, in that order)")
        passes.add_argument("--share-tolerance", type=float, metavar="REL", help="share: also merge tensors whose "
                            "relative difference is at most REL (default: identical only)")
        passes.add_argument("--no-share-transposed", action="store_true",
                            help="share: do not merge transposed copies")
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

    def apply(self, args: argparse.Namespace, config: OptimizeConfig) -> OptimizeConfig:
        """``config`` with the pass list and every pass option given."""
        if args.passes is not None:
            config = config.updated(passes=args.passes)
        config = updated_section(config, "share", {
            "tolerance": args.share_tolerance, "transposed": False if args.no_share_transposed else None,
        })
        config = updated_section(config, "lowrank", {
            "rank": args.rank, "energy": args.rank_energy, "max_error": args.rank_error,
            "min_saving": args.rank_min_saving,
        })
        return updated_section(config, "prune", {
            "fraction": args.prune, "threshold": args.prune_threshold, "scope": args.prune_scope,
            "sparse": False if args.no_sparse else None,
        })


class CalibrationArgs:
    """The ``calibration`` group: the real samples that fit the weights to their activations, and what they
    change."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the group's flags to ``parser``."""
        group = parser.add_argument_group("calibration (real input samples; without them compression is data-free)")
        group.add_argument("--data", nargs="+", metavar="NPZ_OR_DIR", help=".npz files or folders of them, arrays "
                           "named after the model inputs (one more leading axis: several samples); some calibrate, "
                           "the rest are held out and validation runs on them")
        group.add_argument("--calibration-samples", type=int, metavar="N", help="samples that calibrate, after a "
                           "seeded shuffle (default 32); the rest are held out")
        group.add_argument("--rounding", choices=("gptq", "nearest"), help="with data: gptq (default) rounds input "
                           "feature by input feature with error compensation; nearest rounds each weight alone")
        group.add_argument("--no-activation-weighting", action="store_true", help="with data: fit codebooks and "
                           "grids to the weights alone, not weighted by their inputs' E[x^2]")
        group.add_argument("--no-bias-correction", action="store_true", help="with data: leave biases as they are")

    def apply(self, args: argparse.Namespace, config: OptimizeConfig) -> OptimizeConfig:
        """``config`` with the data and the calibration methods given."""
        spec: dict[str, Any] = {}
        if args.rounding is not None:
            spec["rounding"] = args.rounding
        if args.no_activation_weighting:
            spec["weighting"] = False
        if args.no_bias_correction:
            spec["bias_correction"] = False
        if spec:
            config = config.updated(default=config.default.updated(spec))
        return updated_section(config, "calibration", {
            "data": None if args.data is None else list(args.data), "samples": args.calibration_samples,
            "seed": args.seed,
        })


class BudgetArgs:
    """The ``budget`` group: one size, bits or loss budget the search meets by choosing every weight's form."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the group's flags to ``parser``."""
        group = parser.add_argument_group("budget (every weight's scheme, bits and granularity searched; one of)")
        group.add_argument("--target-bits", type=float, metavar="B", help="average stored bits per compressed "
                           "weight, codebooks and scales included (reached within 0.05 above)")
        group.add_argument("--target-size", type=byte_count, metavar="SIZE", help="output file size: bytes, or "
                           "with a unit (500KB, 12.5MB, 1GiB)")
        group.add_argument("--max-loss", type=float, metavar="X", help="largest output error on the held-out "
                           "--data samples: relative error (default) or 1 - cosine with --loss cosine")
        group.add_argument("--loss", choices=LOSS_METRICS, help="what --max-loss bounds (default relative)")
        group.add_argument("--budget-bits", type=bit_list, metavar="LIST", help="candidate widths, e.g. 2-8 or "
                           "3,4,8 (default 1-8)")

    def apply(self, args: argparse.Namespace, config: OptimizeConfig) -> OptimizeConfig:
        """``config`` with the budget given."""
        return updated_section(config, "budget", {
            "target_bits": args.target_bits, "target_size": args.target_size, "max_loss": args.max_loss,
            "loss": args.loss, "bits": args.budget_bits,
        })


def byte_count(text: str) -> int:
    """``--target-size``: a byte count, with an optional decimal (KB, MB, GB) or binary (KiB, MiB, GiB) unit."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    number = text.strip().rstrip("BbIiKkMmGg ")
    unit = text.strip()[len(number):].strip().lower()
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or a number with KB, MB, GB, KiB, MiB, "
                                         "GiB)") from None
    return int(value)


def bit_list(text: str) -> tuple[int, ...]:
    """``--budget-bits``: widths as ``2-8`` or ``3,4,8``."""
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            return tuple(range(low, high + 1))
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of widths: {text!r} (e.g. 2-8 or 3,4,8)") from None


def pass_list(text: str) -> tuple[str, ...]:
    """``--passes``: comma-separated pass names (old names accepted) in the order to run them."""
    names = tuple(PASS_ALIASES.get(p.strip(), p.strip()) for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PASS_NAMES]
    if unknown or not names:
        choices = ", ".join(PASS_NAMES)
        raise argparse.ArgumentTypeError(f"unknown pass {', '.join(unknown) or '(none)'}; choose from {choices}")
    return names


class ValidationArgs:
    """The ``validation`` group's flags that ``optimize`` and ``compare`` share: inputs and tolerances."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the group's flags to ``parser``."""
        self.add_arguments(parser.add_argument_group("validation"))

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Add the flags to the ``validation`` argument group."""
        group.add_argument("--inputs", nargs="+", metavar="NPZ", help="input samples, one .npz per sample (arrays "
                           "named after the model inputs; other arrays are ignored)")
        group.add_argument("--input-shapes", nargs="+", metavar="NAME:[D,...]", help="shapes for dynamic inputs")
        group.add_argument("--samples", type=int, help="generated input samples (default 1)")
        group.add_argument("--atol", type=float, help="absolute tolerance per element (with --rtol: atol + "
                           "rtol*|ref|)")
        group.add_argument("--rtol", type=float, help="relative tolerance per element")
        group.add_argument("--min-cosine", type=float, help="lowest cosine similarity per tensor (default 0.99)")
        group.add_argument("--min-top1", type=float, metavar="FRACTION",
                           help="lowest top-1 agreement of classification-shaped outputs (default: not checked)")

    def changes(self, args: argparse.Namespace) -> dict[str, Any]:
        """The validation settings given, as config keys."""
        changes = given(args, VALIDATION_FLAGS)
        if args.inputs:
            changes["inputs"] = list(args.inputs)
        if args.input_shapes:
            from onnx_share.check.feeds import parse_input_shapes

            changes["input_shapes"] = {k: list(v) for k, v in parse_input_shapes(args.input_shapes).items()}
        return changes


class OptimizeValidationArgs(ValidationArgs):
    """``optimize``'s validation flags: the shared ones plus ``--layerwise``, ``--no-validate`` and ``--check``."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Add the flags to the ``validation`` argument group."""
        super().add_arguments(group)
        group.add_argument("--layerwise", action=argparse.BooleanOptionalAction, default=None,
                           help="also compare every intermediate tensor both models share and name the first one "
                           "outside the tolerances (default: with --report-html)")
        group.add_argument("--no-validate", action="store_true", help="skip the onnxruntime comparison")
        group.add_argument("--check", action="store_true", help="exit 3 when an output fails the tolerances")

    def apply(self, args: argparse.Namespace, config: OptimizeConfig, *, layerwise_default: bool) -> OptimizeConfig:
        """``config`` with the validation flags given; ``layerwise_default`` turns the layer-wise comparison on
        unless ``--layerwise``/``--no-layerwise`` says otherwise (False keeps the config's choice)."""
        changes = self.changes(args)
        if args.no_validate:
            changes["enabled"] = False
        if args.layerwise is not None:
            changes["layerwise"] = args.layerwise
        elif layerwise_default:
            changes["layerwise"] = True
        return updated_section(config, "validation", changes)

    def exit_on_failure(self, args: argparse.Namespace) -> bool:
        """Whether a failed comparison or engine build should make the command exit 3 (``--check``)."""
        return args.check


class CompareValidationArgs(ValidationArgs):
    """``compare``'s validation flags: the shared ones plus ``--seed`` and ``--no-layerwise``."""

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Add the flags to the ``validation`` argument group."""
        super().add_arguments(group)
        group.add_argument("--seed", type=int, help="seed for generated inputs (default 0)")
        group.add_argument("--no-layerwise", action="store_true", help="compare the outputs only")

    def config(self, args: argparse.Namespace) -> ValidationConfig:
        """The validation config the flags describe; layer-wise unless ``--no-layerwise``."""
        changes = {**self.changes(args), "seed": args.seed, "layerwise": not args.no_layerwise}
        return updated_section(OptimizeConfig(), "validation", changes).validation


class TensorRTArgs:
    """The TensorRT group: ``--trt`` and the engine's precision flags."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the group's flags to ``parser``."""
        trt = parser.add_argument_group("TensorRT (optional extra: pip install 'onnx-share[trt]', NVIDIA GPU)")
        trt.add_argument("--trt", action="store_true", help="build a TensorRT engine from the rewritten model "
                         "through Polygraphy, compare it with onnxruntime, and record engine size and latency")
        precision = trt.add_mutually_exclusive_group()
        precision.add_argument("--fp16", action="store_true", help="let TensorRT use FP16 kernels")
        precision.add_argument("--strongly-typed", action="store_true", help="strongly typed network: every tensor "
                               "keeps the model's type")

    def options(self, args: argparse.Namespace) -> TensorRTOptions | None:
        """The engine build options, or None without ``--trt`` (where a precision flag is an error)."""
        if not args.trt:
            if args.fp16 or args.strongly_typed:
                raise OnnxShareError("--fp16 and --strongly-typed apply to the TensorRT build; add --trt")
            return None
        from onnx_share.targets.tensorrt import TensorRTOptions

        return TensorRTOptions(fp16=args.fp16, strongly_typed=args.strongly_typed)


class ReportArgs:
    """``--report`` and ``--report-html``: the files a report is written to."""

    def __init__(self, html_help: str) -> None:
        self.html_help = html_help

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the flags to ``parser`` (not to a group of their own)."""
        parser.add_argument("--report", metavar="FILE", help="write the JSON report here")
        parser.add_argument("--report-html", metavar="FILE", help=self.html_help)

    def wants_layerwise(self, args: argparse.Namespace) -> bool:
        """Whether an HTML report, whose error chart is per layer, is asked for."""
        return bool(args.report_html)

    def check(self, args: argparse.Namespace) -> None:
        """Refuse, before any work, report paths that cannot be written."""
        from onnx_share.io.save import check_output_path

        for path in (args.report, args.report_html):
            if path:
                check_output_path(Path(path))

    def write(self, args: argparse.Namespace, report: Report | CompareReport) -> list[str]:
        """Write the JSON and HTML reports the flags ask for (atomically); the paths written."""
        from onnx_share.io.save import write_text

        written = []
        if args.report:
            write_text(args.report, report.to_json())
            written.append(args.report)
        if args.report_html:
            from onnx_share.check.weight_diff import WeightDiff
            from onnx_share.io.proto import ProtoModel
            from onnx_share.report.data import CompareReport
            from onnx_share.report.html import render_html

            if isinstance(report, CompareReport):
                original, rewritten = report.original_path, report.rewritten_path
            else:
                original, rewritten = report.input_path, report.output_path
            if original and rewritten and report.compressed:
                diff = WeightDiff(ProtoModel.read(original), ProtoModel.read(rewritten))
                report.histograms = diff.histograms(report.compressed)
            write_text(args.report_html, render_html(report))
            written.append(args.report_html)
        return written


class VerbosityArgs:
    """``-v``/``--verbose``: log level and tracebacks."""

    def __init__(self, help_text: str | None = None) -> None:
        self.help_text = help_text

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the flag to ``parser``."""
        parser.add_argument("-v", "--verbose", action="count", default=0, help=self.help_text)

    def log_level(self, args: argparse.Namespace) -> int:
        """WARNING by default, INFO with ``-v``, DEBUG with ``-vv``."""
        return {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)

    def tracebacks(self, args: argparse.Namespace) -> bool:
        """Whether errors are shown with their traceback (``-v``)."""
        return args.verbose > 0
