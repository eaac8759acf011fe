"""The samples calibration runs on: read from ``.npz`` files or folders of them (or given as feed dicts), checked
against the model's inputs, and split into calibration and held-out samples by a seeded shuffle.

A file holds arrays named after the model inputs (others are ignored); their leading axis holds the samples when
an array has one more dimension than its input, or when the input's first dimension is a batch: fixed to 1, or
dynamic and not named like a sequence (``seq``, ``time``, ``len``, ``step``, ``frame``, ``token``). Each sample then
keeps a batch of 1. Otherwise the file is one sample, run as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from onnx_share.check.feeds import as_input_dtype, input_metadata, load_inputs
from onnx_share.errors import OnnxShareError

Sample = dict[str, np.ndarray]
# Words in the name of a dynamic first dimension that make it a sequence, not a batch of samples.
SEQUENCE_WORDS = ("seq", "time", "len", "step", "frame", "token")


@dataclass
class Split:
    """The samples that tune the weights and the ones held out to measure them, and how they were split."""

    calibration: list[Sample]
    held_out: list[Sample]
    description: str
    notes: list[str]


def data_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """``.npz`` files named, and those in folders named (sorted); a path that is neither is an error."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(path.glob("*.npz"))
            if not found:
                raise OnnxShareError(f"data folder {path} holds no .npz file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise OnnxShareError(f"data {path}: no such file or folder")
    return files


def read_samples(model: onnx.ModelProto, paths: Sequence[str | os.PathLike]) -> tuple[list[Sample], list[str]]:
    """Every sample in the ``.npz`` files or folders ``paths`` (see the module docstring), and notes on how they
    were read."""
    files = data_files(paths)
    metadata = input_metadata(model, {})
    samples: list[Sample] = []
    notes: list[str] = []
    for path, arrays in zip(files, load_inputs(files), strict=True):
        samples.extend(_samples_of(metadata, arrays, path, notes))
    return samples, sorted(set(notes))


def checked_samples(model: onnx.ModelProto, given: Iterable[Mapping[str, np.ndarray]]
                    ) -> tuple[list[Sample], list[str]]:
    """Feed dicts from the Python API, one sample each, checked like samples read from files, and notes on them."""
    metadata = input_metadata(model, {})
    notes: list[str] = []
    samples = [_checked(metadata, feed, f"sample {number}", notes) for number, feed in enumerate(given)]
    return samples, sorted(set(notes))


def split_samples(samples: Sequence[Sample], calibration: int, seed: int) -> Split:
    """Shuffle ``samples`` with ``seed``; the first ``calibration`` tune the weights and the rest are held out. With
    no more samples than that, a quarter (at least one) is held out; a single sample serves both, and a note says
    so."""
    if not samples:
        raise OnnxShareError("the calibration data holds no sample")
    order = np.random.default_rng(seed).permutation(len(samples))
    shuffled = [samples[i] for i in order]
    notes = []
    count = calibration
    if len(shuffled) == 1:
        notes.append("one sample: it calibrates and validates, so validation is not on held-out data")
        return Split(shuffled, shuffled, "1 sample, used for calibration and validation", notes)
    if len(shuffled) <= calibration:
        count = len(shuffled) - max(1, len(shuffled) // 4)
        notes.append(f"{len(shuffled)} samples, not more than {calibration}: {len(shuffled) - count} held out for "
                     "validation")
    description = (f"{len(shuffled)} samples shuffled with seed {seed}: {count} for calibration, "
                   f"{len(shuffled) - count} held out")
    return Split(shuffled[:count], shuffled[count:], description, notes)


def _samples_of(metadata: Mapping[str, tuple[np.dtype, list[int | str]]], arrays: Mapping[str, np.ndarray],
                path: Path, notes: list[str]) -> list[Sample]:
    missing = [name for name in metadata if name not in arrays]
    if missing:
        raise OnnxShareError(f"data {path} has no array for model input(s) {', '.join(missing)}")
    counts = {name: _sample_count(arrays[name], dims) for name, (_, dims) in metadata.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name!r} {count}" for name, count in counts.items())
        raise OnnxShareError(f"data {path}: the arrays hold different numbers of samples ({listed})")
    count = next(iter(counts.values()), 1)
    if count == 1 and all(arrays[name].ndim == len(dims) for name, (_, dims) in metadata.items()):
        return [_checked(metadata, arrays, str(path), notes)]
    if count > 1:
        notes.append(f"data {path}: {count} samples along the first axis of its arrays")
    samples = []
    for index in range(count):
        feed = {}
        for name, (_, dims) in metadata.items():
            array = arrays[name]
            feed[name] = array[index] if array.ndim == len(dims) + 1 else array[index : index + 1]
        samples.append(_checked(metadata, feed, f"{path} sample {index}", notes))
    return samples


def _sample_count(array: np.ndarray, dims: list[int | str]) -> int:
    """Samples an array holds: its leading axis when it has one dimension more than the input, or when the input's
    first dimension is a batch (see the module docstring); else 1."""
    if array.ndim == len(dims) + 1:
        return int(array.shape[0])
    if array.ndim and dims and array.ndim == len(dims) and _is_batch(dims[0]):
        return int(array.shape[0])
    return 1


def _is_batch(dim: int | str) -> bool:
    """Whether an input's first dimension counts samples: fixed to 1, or dynamic and not named like a sequence."""
    if isinstance(dim, str):
        return not any(word in dim.lower() for word in SEQUENCE_WORDS)
    return dim in (1, -1)


def _checked(metadata: Mapping[str, tuple[np.dtype, list[int | str]]], feed: Mapping[str, np.ndarray], where: str,
             notes: list[str]) -> Sample:
    sample = {}
    for name, (dtype, dims) in metadata.items():
        if name not in feed:
            raise OnnxShareError(f"{where} has no array for model input {name!r}")
        array = np.asarray(feed[name])
        if array.ndim != len(dims):
            raise OnnxShareError(f"{where}: array {name!r} has shape {list(array.shape)}, the model input has "
                                 f"{len(dims)} dimensions {dims}")
        fixed = [(d, n) for d, n in zip(dims, array.shape, strict=True) if isinstance(d, int) and d >= 0]
        if any(d != n for d, n in fixed):
            raise OnnxShareError(f"{where}: array {name!r} has shape {list(array.shape)}, the model input is {dims}")
        sample[name] = as_input_dtype(array, dtype, name, where, notes)
    return sample
