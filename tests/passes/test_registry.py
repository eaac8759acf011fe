"""The pipeline: passes built from their names, and a crash inside a pass names the pass and the tensor."""

from __future__ import annotations

import pytest
from helpers import DIGITS_DIR

from onnx_share.api import optimize
from onnx_share.config import PASS_NAMES
from onnx_share.passes import forms
from onnx_share.passes.registry import PASSES, PipelineError


def test_every_pass_name_has_passes() -> None:
    assert set(PASSES) == set(PASS_NAMES)


def test_a_crash_inside_a_pass_names_the_pass_and_the_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("centroid")

    monkeypatch.setattr(forms, "fit_codebook", broken)
    with pytest.raises(PipelineError) as error:
        optimize(DIGITS_DIR / "digits_cnn.onnx", {"default": {"bits": 4}})
    assert str(error.value).startswith("pass 'compress' failed on tensor ")
    assert "KeyError" in str(error.value) and "'centroid'" in str(error.value)
