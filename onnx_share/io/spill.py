"""A scratch data file for finished tensors, so a rewrite holds one tensor's data at a time, not the model's.

A pass that has rewritten a weight hands each large new tensor to :meth:`TensorSpill.store`: its bytes (packed, as
the file format stores them) are appended to the spill file at an aligned offset and an ``ir.ExternalTensor`` that
reads them back (memory-mapped, on demand) takes its place. Saving copies them into the output's data file
in the kernel (``copy_file_range``), never through Python. The spill lives as long as the model it is attached to
(:func:`attach`): its folder is deleted when the model is garbage collected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx_ir as ir

# Set in an ``ir.Model``'s ``meta``: the TensorSpill its rewrites write finished tensors to.
SPILL_META_KEY = "onnx_share.spill"
# Tensors smaller than this stay in memory (codebooks, scales): not worth a file region.
SPILL_MIN_BYTES = 65536
SPILL_ALIGNMENT = 4096


class TensorSpill:
    """An append-only data file in a private temporary folder (under ``folder``, else the system's)."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix=".onnx-share-spill.", dir=folder)
        self.path = Path(self._folder.name) / "spill.data"
        self._file = self.path.open("wb")

    def store(self, tensor: ir.TensorProtocol) -> ir.TensorProtocol:
        """``tensor`` written to the spill file, as an external tensor reading it back; small tensors unchanged."""
        if tensor.nbytes < SPILL_MIN_BYTES or isinstance(tensor, ir.ExternalTensor):
            return tensor
        offset = -self._file.tell() % SPILL_ALIGNMENT + self._file.tell()
        self._file.seek(offset)
        tensor.tofile(self._file)
        self._file.flush()
        return ir.ExternalTensor(
            self.path.name, offset, tensor.nbytes, tensor.dtype, shape=tensor.shape, name=tensor.name,
            base_dir=self.path.parent,
        )


def attach(model: ir.Model, spill: TensorSpill) -> None:
    """Make ``spill`` the one ``model``'s rewrites write to (and keep it alive as long as the model)."""
    model.meta[SPILL_META_KEY] = spill


def spill_of(model: ir.Model) -> TensorSpill | None:
    """The spill attached to ``model``, if any."""
    return model.meta.get(SPILL_META_KEY)
