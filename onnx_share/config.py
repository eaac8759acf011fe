"""One configuration tree behind the CLI and the Python API.

A global :class:`WeightSpec` says how every weight is compressed; per-op-type and per-tensor-name (glob)
overrides change single fields for the tensors they match: op types first, then name globs in order, the last
matching glob winning. A tensor read by several op types (a tied embedding read by ``Gather`` and ``MatMul``)
takes the overrides of all of them; two that set one field to different values are an error naming the tensor
and both rules. The whole tree round-trips through plain dicts, so it can live in JSON or YAML.

Vocabulary: a weight is stored as a **codebook** (k-means centroids plus an index per weight, decoded by
``Gather``) or on a **uniform** grid (integers plus scales, decoded by ``DequantizeLinear``); the pipeline step
that does either is ``compress``. The older names ``lut`` (scheme) and ``cluster`` (pass) are still read.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from onnx_share.errors import OnnxShareError

Scheme = Literal["codebook", "uniform"]
Granularity = Literal["auto", "tensor", "channel", "group"]
Rounding = Literal["nearest", "gptq"]

SCHEMES: tuple[str, ...] = ("codebook", "uniform")
# Names read for compatibility with configs and commands written before the vocabulary was settled.
SCHEME_ALIASES = {"lut": "codebook"}
PASS_ALIASES = {"cluster": "compress"}
GRANULARITIES: tuple[str, ...] = ("auto", "tensor", "channel", "group")
# What the output is written for: standard ONNX operators only; onnxruntime (its com.microsoft GatherBlockQuantized
# reads quantized embedding tables without expanding them each run); TensorRT (symmetric grids, INT4 in blocks of
# 64 or 128, no 2-bit grids).
RUNTIMES: tuple[str, ...] = ("portable", "onnxruntime", "tensorrt")
TENSORRT_INT4_BLOCKS: tuple[int, ...] = (64, 128)
UNIFORM_BITS: tuple[int, ...] = (2, 4, 8)
MAX_CLUSTERS = 256


@dataclass(frozen=True)
class WeightSpec:
    """How one weight tensor is compressed.

    - ``scheme``: ``codebook`` stores k-means centroids plus an index per weight (``Gather``);
      ``uniform`` stores integers on an evenly spaced grid (``DequantizeLinear``).
    - ``bits``: index width, 1-8 (``codebook``) or 2/4/8 (``uniform``); ``clusters`` overrides the codebook
      size k = 2**bits (``codebook``).
    - ``granularity``: one codebook/scale per tensor, per output channel, or per group. ``auto`` means per
      tensor for ``codebook``; for ``uniform``, per output channel at 8 bits and, below 8 bits, blocks along the
      reduction axis of MatMul/Gemm weights (per channel elsewhere): layouts onnxruntime fuses into
      MatMulNBits for MatMul weights and TensorRT accepts.
    - ``group_size``: ``codebook`` — output channels sharing one codebook; ``uniform`` — block length along the
      reduction axis (a power of two from 16 to 256 lets onnxruntime fuse; TensorRT takes 64 or 128).
    - ``init``: k-means seeding; ``optimal`` is the exact 1-D optimum (the others are for experiments).
    - ``symmetric``: ``uniform`` only; zero point 0 (what TensorRT requires) or an asymmetric grid.
    - ``pin_zero``: ``codebook`` only; keep exact zeros as their own centroid at 0.0 so pruning sparsity
      survives. None (auto) pins when at least 10% of a codebook's weights are exactly zero.
    - ``skip``: leave matching tensors untouched.

    With calibration data (:class:`CalibrationConfig`), for weights whose activations were measured:

    - ``weighting``: k-means and grid clipping weigh each weight by its input feature's E[x²], or a ``Gather``
      table's rows by how often the samples read them. None (auto): on, but for ``Gather`` tables (measured on a
      lexical analyser's character table at 4 bits, 30 calibration sentences: F1 0.964 weighted, 0.981 not: a few
      samples read too few rows to say how often the others are read).
    - ``rounding``: ``gptq`` rounds input feature by input feature onto the fitted codebook or grid and spreads each
      one's error over the features not yet rounded (error compensation on XᵀX); ``nearest`` rounds each weight on
      its own.
    - ``refit``: ``codebook`` only, off by default; after rounding, solve the centroids again by least squares on
      XᵀX for the assignment rounding chose.
    - ``bias_correction``: add E[x]·(W − Ŵ) to the bias of a ``Conv``/``Gemm`` (created when missing), of the
      ``Add`` after a ``MatMul`` or of a recurrent op, so the mean output does not move. None (auto): on, but for
      recurrent ops (measured on a g2p LSTM at 3 bits: 0.947 with it, 0.958 without).
    """

    scheme: Scheme = "codebook"
    bits: int = 8
    clusters: int | None = None
    granularity: Granularity = "auto"
    group_size: int = 128
    init: str = "optimal"
    symmetric: bool = True
    pin_zero: bool | None = None
    skip: bool = False
    weighting: bool | None = None
    rounding: Rounding = "gptq"
    refit: bool = False
    bias_correction: bool | None = None

    def __post_init__(self) -> None:
        if self.scheme in SCHEME_ALIASES:
            object.__setattr__(self, "scheme", SCHEME_ALIASES[self.scheme])
        if self.scheme not in SCHEMES:
            raise OnnxShareError(f"scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.granularity not in GRANULARITIES:
            raise OnnxShareError(
                f"granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}"
            )
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 8:
            raise OnnxShareError(f"bits must be an integer from 1 to 8, got {self.bits!r}")
        if self.scheme == "uniform" and self.bits not in UNIFORM_BITS:
            raise OnnxShareError(f"the uniform scheme supports 2, 4 or 8 bits, got {self.bits}")
        if self.clusters is not None and not 2 <= self.clusters <= MAX_CLUSTERS:
            raise OnnxShareError(f"clusters must be from 2 to {MAX_CLUSTERS}, got {self.clusters}")
        if self.group_size < 1:
            raise OnnxShareError(f"group_size must be positive, got {self.group_size}")
        if self.rounding not in ("nearest", "gptq"):
            raise OnnxShareError(f"rounding must be nearest or gptq, got {self.rounding!r}")
        from onnx_share.numerics.kmeans import INIT_METHODS  # here: numpy stays out of ``onnx-share --help``

        if self.init not in INIT_METHODS:
            raise OnnxShareError(f"init must be one of {', '.join(INIT_METHODS)}, got {self.init!r}")

    @property
    def num_clusters(self) -> int:
        """k: the codebook size (``codebook``) or the number of grid levels (``uniform``)."""
        return self.clusters if self.clusters is not None else 2**self.bits

    @property
    def index_bits(self) -> int:
        """Bits needed to address ``num_clusters`` entries."""
        return max(1, (self.num_clusters - 1).bit_length())

    def updated(self, changes: Mapping[str, Any], what: str = "weight spec") -> WeightSpec:
        """A copy with ``changes`` applied (unknown keys and mistyped values are errors naming the key)."""
        if isinstance(changes, Mapping) and changes.get("scheme") in SCHEME_ALIASES:
            changes = {**changes, "scheme": SCHEME_ALIASES[changes["scheme"]]}
        return dataclasses.replace(self, **_checked_fields(WeightSpec, changes, what))


@dataclass(frozen=True)
class ValidationConfig:
    """How the original and the rewritten model are compared in onnxruntime.

    A tensor (output, or intermediate with ``layerwise``) fails when its cosine similarity is below
    ``min_cosine``, when an element is outside ``atol + rtol * |reference|`` (if either is given), or, for
    integer and bool tensors, when any element differs. ``min_top1``: lowest top-1 agreement of
    classification-shaped outputs. ``layerwise``: also compare every intermediate tensor both models share
    by name and report the first (in topological order) that fails.
    """

    inputs: tuple[str, ...] = ()
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    samples: int = 1
    seed: int = 0
    atol: float | None = None
    rtol: float | None = None
    min_cosine: float = 0.99
    enabled: bool = True
    min_top1: float | None = None
    layerwise: bool = False

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise OnnxShareError(f"validation.samples must be at least 1, got {self.samples}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise OnnxShareError(f"validation.min_cosine must be in [-1, 1], got {self.min_cosine}")
        if self.min_top1 is not None and not 0.0 <= self.min_top1 <= 1.0:
            raise OnnxShareError(f"validation.min_top1 must be in [0, 1], got {self.min_top1}")
        for key in ("atol", "rtol"):
            if (getattr(self, key) or 0.0) < 0.0:
                raise OnnxShareError(f"validation.{key} must not be negative, got {getattr(self, key)}")


@dataclass(frozen=True)
class CalibrationConfig:
    """Real input samples that tune the compressed weights (see :class:`WeightSpec` for what they change).

    ``data``: ``.npz`` files or folders of them, arrays named after the model inputs (a leading sample axis holds
    several samples); ``samples``: how many calibrate, after a shuffle with ``seed``; the rest are held out, and
    validation runs on them unless ``validation.inputs`` names other files. Without data, compression is data-free.
    """

    data: tuple[str, ...] = ()
    samples: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise OnnxShareError(f"calibration.samples must be at least 1, got {self.samples}")


LOSS_METRICS: tuple[str, ...] = ("relative", "cosine")
BUDGET_BITS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)


@dataclass(frozen=True)
class BudgetConfig:
    """A budget the search meets by choosing every weight's scheme, bits and granularity (one budget at a time).

    - ``target_bits``: average stored bits per compressed weight (indices or codes, codebooks, scales), reached
      within 0.05 above.
    - ``target_size``: bytes of the output file.
    - ``max_loss``: the largest held-out output error allowed: with ``loss`` ``relative``, ‖Y − Ŷ‖ / ‖Y‖ (root
      mean over the float outputs); with ``cosine``, 1 − the lowest output cosine. Measured on the held-out
      calibration samples, so it needs calibration data.
    - ``max_drop``: the Python API's ``score(model_path) -> float`` (higher is better) may fall by at most this.
    - ``bits`` and ``schemes``: the candidates per weight (uniform grids take 2, 4 and 8 of those bits); codebooks
      are tried per tensor and at ``auto`` granularity, grids at ``auto``.
    """

    target_bits: float | None = None
    target_size: int | None = None
    max_loss: float | None = None
    loss: Literal["relative", "cosine"] = "relative"
    max_drop: float | None = None
    bits: tuple[int, ...] = BUDGET_BITS
    schemes: tuple[str, ...] = SCHEMES

    def __post_init__(self) -> None:
        set_budgets = [key for key in ("target_bits", "target_size", "max_loss", "max_drop")
                       if getattr(self, key) is not None]
        if len(set_budgets) > 1:
            raise OnnxShareError(f"set one budget, not {' and '.join(set_budgets)}")
        if self.target_bits is not None and not 1.0 <= self.target_bits <= 32.0:
            raise OnnxShareError(f"budget.target_bits must be from 1 to 32, got {self.target_bits}")
        if self.target_size is not None and self.target_size < 1:
            raise OnnxShareError(f"budget.target_size must be a positive byte count, got {self.target_size}")
        if self.max_loss is not None and not 0.0 <= self.max_loss <= 2.0:
            raise OnnxShareError(f"budget.max_loss must be in [0, 2], got {self.max_loss}")
        if self.max_drop is not None and self.max_drop < 0.0:
            raise OnnxShareError(f"budget.max_drop must not be negative, got {self.max_drop}")
        if self.loss not in LOSS_METRICS:
            raise OnnxShareError(f"budget.loss must be one of {', '.join(LOSS_METRICS)}, got {self.loss!r}")
        if not self.bits or any(not isinstance(b, int) or not 1 <= b <= 8 for b in self.bits):
            raise OnnxShareError(f"budget.bits must be integers from 1 to 8, got {list(self.bits)}")
        if not self.schemes or any(s not in SCHEMES for s in self.schemes):
            raise OnnxShareError(f"budget.schemes must be among {', '.join(SCHEMES)}, got {list(self.schemes)}")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, key) is not None for key in ("target_bits", "target_size", "max_loss", "max_drop"))


PASS_NAMES: tuple[str, ...] = ("fold-shapes", "fold-qdq", "share", "lowrank", "prune", "compress")


@dataclass(frozen=True)
class ShareConfig:
    """``share``: merge identical tensors; ``tolerance`` (relative) also merges near-identical ones;
    ``transposed`` also merges a tensor with another's transpose (tied embeddings)."""

    tolerance: float | None = None
    transposed: bool = True

    def __post_init__(self) -> None:
        if self.tolerance is not None and not 0.0 <= self.tolerance < 1.0:
            raise OnnxShareError(f"share.tolerance must be in [0, 1), got {self.tolerance}")


@dataclass(frozen=True)
class LowRankConfig:
    """``lowrank``: split MatMul/Gemm weights W[in, out] into A[in, r] @ B[r, out].

    The rank is ``rank``, or the smallest keeping ``energy`` of the squared singular values, or the smallest
    whose relative weight error is at most ``max_error``. A split happens only when r*(in+out) is at most
    ``(1 - min_saving)`` of in*out.
    """

    rank: int | None = None
    energy: float | None = None
    max_error: float | None = None
    min_saving: float = 0.2

    def __post_init__(self) -> None:
        if self.rank is not None and self.rank < 1:
            raise OnnxShareError(f"lowrank.rank must be at least 1, got {self.rank}")
        if self.energy is not None and not 0.0 < self.energy <= 1.0:
            raise OnnxShareError(f"lowrank.energy must be in (0, 1], got {self.energy}")
        if self.max_error is not None and not 0.0 <= self.max_error < 1.0:
            raise OnnxShareError(f"lowrank.max_error must be in [0, 1), got {self.max_error}")
        if not 0.0 <= self.min_saving < 1.0:
            raise OnnxShareError(f"lowrank.min_saving must be in [0, 1), got {self.min_saving}")

    @property
    def enabled(self) -> bool:
        return self.rank is not None or self.energy is not None or self.max_error is not None


@dataclass(frozen=True)
class PruneConfig:
    """``prune``: zero the smallest-magnitude weights, by ``fraction`` (per tensor, or over all selected
    tensors when ``scope`` is ``global``) or by absolute ``threshold``; ``sparse`` lets a pruned tensor that
    is not clustered afterwards be stored as an ONNX sparse initializer when that is smaller."""

    fraction: float | None = None
    threshold: float | None = None
    scope: Literal["tensor", "global"] = "tensor"
    sparse: bool = True

    def __post_init__(self) -> None:
        if self.fraction is not None and self.threshold is not None:
            raise OnnxShareError("prune: set fraction or threshold, not both")
        if self.fraction is not None and not 0.0 <= self.fraction <= 1.0:
            raise OnnxShareError(f"prune.fraction must be in [0, 1], got {self.fraction}")
        if self.threshold is not None and not self.threshold >= 0.0:
            raise OnnxShareError(f"prune.threshold must be non-negative, got {self.threshold}")
        if self.scope not in ("tensor", "global"):
            raise OnnxShareError(f"prune.scope must be tensor or global, got {self.scope!r}")

    @property
    def enabled(self) -> bool:
        return self.fraction is not None or self.threshold is not None


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything ``optimize`` needs: the default spec, overrides, selection and save options, the runtime the
    output is for (``target``) and the threads for per-tensor work (``jobs``, default every core; the output is
    the same for any number). ``external_data``: True saves the tensors in a data file beside the output, False in
    one file, None (default) in a data file where the input had one or one file would pass 2 GB."""

    default: WeightSpec = field(default_factory=WeightSpec)
    op_types: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tensors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    min_elements: int = 4096
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    seed: int = 0
    external_data: bool | None = None
    passes: tuple[str, ...] | None = None
    share: ShareConfig = field(default_factory=ShareConfig)
    lowrank: LowRankConfig = field(default_factory=LowRankConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    target: str = "portable"
    jobs: int | None = None

    def __post_init__(self) -> None:
        if self.jobs is not None and (not isinstance(self.jobs, int) or self.jobs < 1):
            raise OnnxShareError(f"jobs must be a positive integer, got {self.jobs!r}")
        if self.target not in RUNTIMES:
            raise OnnxShareError(f"target must be one of {', '.join(RUNTIMES)}, got {self.target!r}")
        if self.passes is not None:
            object.__setattr__(self, "passes", tuple(PASS_ALIASES.get(p, p) for p in self.passes))
        unknown = [p for p in self.passes or () if p not in PASS_NAMES]
        if unknown:
            raise OnnxShareError(f"unknown pass(es) {', '.join(unknown)}; passes are {', '.join(PASS_NAMES)}")
        if self.min_elements < 1:
            raise OnnxShareError(f"min_elements must be positive, got {self.min_elements}")
        self._check_target(self.default, "default")
        for where, overrides in (("op_types", self.op_types), ("tensors", self.tensors)):
            for key, changes in overrides.items():
                self._check_target(self.default.updated(changes, f"{where}[{key!r}]"), f"{where}[{key!r}]")

    def _check_target(self, spec: WeightSpec, where: str) -> None:
        """Refuse a uniform spec TensorRT cannot run when the target is TensorRT."""
        if self.target != "tensorrt" or spec.scheme != "uniform":
            return
        problem = None
        if not spec.symmetric:
            problem = "an asymmetric grid (TensorRT takes zero point 0 only)"
        elif spec.bits == 2:
            problem = "a 2-bit grid (TensorRT has INT8 and INT4 weights)"
        elif spec.bits == 4 and spec.granularity in ("auto", "group") and spec.group_size not in TENSORRT_INT4_BLOCKS:
            problem = f"INT4 blocks of {spec.group_size} (TensorRT takes blocks of 64 or 128)"
        if problem is not None:
            raise OnnxShareError(f"{where} asks for {problem}; change it or choose another target")

    def spec_for(self, tensor_name: str, op_types: Iterable[str]) -> WeightSpec:
        """The spec for one tensor: default, then the overrides for all its consumers' op types (merged), then
        the name globs that match, in order. Two op-type overrides that set one field to different values are an
        error naming the tensor and both rules, unless a matching name glob sets that field."""
        by_name = [changes for pattern, changes in self.tensors.items() if fnmatch.fnmatchcase(tensor_name, pattern)]
        named = {key for changes in by_name for key in changes}
        merged: dict[str, Any] = {}
        source: dict[str, str] = {}
        for op_type in sorted(set(op_types)):
            for key, value in self.op_types.get(op_type, {}).items():
                if key in merged and merged[key] != value and key not in named:
                    raise OnnxShareError(
                        f"tensor {tensor_name!r} is read by {source[key]} and {op_type}, whose overrides disagree: "
                        f"op_types[{source[key]!r}] sets {key}={merged[key]!r}, op_types[{op_type!r}] sets "
                        f"{key}={value!r}; add a tensors[{tensor_name!r}] override to choose"
                    )
                merged[key], source[key] = value, op_type
        spec = self.default.updated(merged) if merged else self.default
        for changes in by_name:
            spec = spec.updated(changes)
        return spec

    def selects(self, tensor_name: str) -> bool:
        """Whether ``--include``/``--exclude`` globs let this tensor be compressed."""
        if self.include and not any(fnmatch.fnmatchcase(tensor_name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(tensor_name, p) for p in self.exclude)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict that :meth:`from_dict` reads back."""
        data = dataclasses.asdict(self)
        data["include"] = list(self.include)
        data["exclude"] = list(self.exclude)
        data["op_types"] = {k: dict(v) for k, v in self.op_types.items()}
        data["tensors"] = {k: dict(v) for k, v in self.tensors.items()}
        data["passes"] = None if self.passes is None else list(self.passes)
        validation = data["validation"]
        validation["inputs"] = list(self.validation.inputs)
        validation["input_shapes"] = {k: list(v) for k, v in self.validation.input_shapes.items()}
        data["calibration"]["data"] = list(self.calibration.data)
        data["budget"]["bits"] = list(self.budget.bits)
        data["budget"]["schemes"] = list(self.budget.schemes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizeConfig:
        """Build a config from a dict as written by :meth:`to_dict` (every key optional)."""
        fields = _checked_fields(cls, data, "config")
        if "default" in fields:
            fields["default"] = WeightSpec().updated(fields["default"], "default")
        if "validation" in fields:
            validation = _checked_fields(ValidationConfig, fields["validation"], "validation")
            validation["inputs"] = tuple(validation.get("inputs", ()))
            validation["input_shapes"] = {
                k: tuple(int(d) for d in v) for k, v in validation.get("input_shapes", {}).items()
            }
            fields["validation"] = ValidationConfig(**validation)
        for key, section in (("share", ShareConfig), ("lowrank", LowRankConfig), ("prune", PruneConfig),
                             ("calibration", CalibrationConfig), ("budget", BudgetConfig)):
            if key in fields:
                fields[key] = section(**_checked_fields(section, fields[key], key))
        if "budget" in fields:
            fields["budget"] = dataclasses.replace(fields["budget"], bits=tuple(fields["budget"].bits),
                                                   schemes=tuple(fields["budget"].schemes))
        if "calibration" in fields:
            fields["calibration"] = dataclasses.replace(fields["calibration"],
                                                        data=tuple(fields["calibration"].data))
        for key in ("include", "exclude"):
            if key in fields:
                fields[key] = tuple(fields[key])
        if fields.get("passes") is not None:
            fields["passes"] = tuple(fields["passes"])
        return cls(**fields)

    @property
    def pass_names(self) -> tuple[str, ...]:
        """The passes to run, in order: ``passes`` if given, else the default pipeline (fold-shapes, fold-qdq,
        share, compress) with lowrank and prune added when their options are set."""
        if self.passes is not None:
            return self.passes
        enabled = {"fold-shapes", "fold-qdq", "share", "compress"}
        if self.lowrank.enabled:
            enabled.add("lowrank")
        if self.prune.enabled:
            enabled.add("prune")
        return tuple(p for p in PASS_NAMES if p in enabled)

    @property
    def worker_count(self) -> int:
        """Threads for per-tensor work: ``jobs``, or every core this process may use."""
        if self.jobs is not None:
            return self.jobs
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def updated(self, **changes: Any) -> OptimizeConfig:
        """A copy with top-level fields replaced."""
        return dataclasses.replace(self, **changes)


def load_config(path: str | Path) -> OptimizeConfig:
    """Read a config from a ``.json``, ``.yaml`` or ``.yml`` file."""
    import json

    import yaml  # here: building the command-line parser should not pay for it

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OnnxShareError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise OnnxShareError(f"config {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise OnnxShareError(f"config {path} must hold a mapping at the top level")
    return OptimizeConfig.from_dict(data)


def config_text(config: OptimizeConfig, path: str | Path) -> str:
    """``config`` as the text of a config file at ``path`` (JSON for ``.json``, else YAML) that
    :func:`load_config` reads back."""
    import json

    if Path(path).suffix.lower() == ".json":
        return json.dumps(config.to_dict(), indent=2) + "\n"
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _checked_fields(cls: type, data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``data`` as keyword arguments for ``cls``: unknown keys and values of the wrong type are errors naming the
    key, the value and what it should be."""
    if not isinstance(data, Mapping):
        raise OnnxShareError(f"{what} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise OnnxShareError(f"unknown {what} key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not _fits(value, hints[key]):
            raise OnnxShareError(f"{what}.{key} must be {_describe(hints[key])}, got {value!r}")
    return dict(data)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a config value read from JSON/YAML (or given in Python) has the type a field declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is Literal:
        return isinstance(value, str) and value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        return isinstance(value, list | tuple) and all(_fits(item, args[0]) for item in value)
    if origin is Mapping or origin is dict:
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and _fits(v, args[1]) for k, v in value.items()
        )
    if dataclasses.is_dataclass(hint):
        return isinstance(value, Mapping | hint)
    return True


def _describe(hint: Any) -> str:
    """What a value of type ``hint`` looks like, in the words of a config file."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_describe(arg) for arg in args if arg is not type(None)]
        return " or ".join(kinds) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if hint is Any:
        return "any value"
    if origin is Mapping or origin is dict:
        return f"a mapping of names to {_describe(args[1])}"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
