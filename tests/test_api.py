"""The Python API: pinned outputs of the default configs, and what ``OptimizeResult`` keeps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import DIGITS_DIR

from onnx_share.api import optimize
from onnx_share.config import OptimizeConfig

# sha256 of the saved digits model per config, fixed before the architecture change; any change to what
# optimize writes for these configs must be deliberate (and update these with the reason in the commit).
PINNED = {
    "default": ({}, "93ae381432b2a13defde98c04b6f7c6157cd0eb6f97bf1a82adfbf1b8ae13c28"),
    "codebook-4": ({"default": {"bits": 4}}, "b76e784f85ccfe9cc7800119a7e55ea07a929d3eab6923b930d86726c52c9cab"),
    "uniform-4": (
        {"default": {"scheme": "uniform", "bits": 4}},
        "bdf01cffff6c6cb632dca24ed27901c78f6a370c01f30762e397d67817d8c945",
    ),
    "codebook-4-channel": (
        {"default": {"bits": 4, "granularity": "channel"}},
        "8e1fed6264564758d103cdb9bfe096cd03ee799a891523464e77a39fe33f6e30",
    ),
    "prune-codebook-4": (
        {"default": {"bits": 4}, "prune": {"fraction": 0.5}},
        "d5ef6d7201265c7d72f3eff88c288b2bfbb567521a3303fe22b1efc873186ca2",
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_digits_outputs_are_pinned(name: str, tmp_path: Path) -> None:
    config, digest = PINNED[name]
    result = optimize(DIGITS_DIR / "digits_cnn.onnx", config)
    path = result.save(tmp_path / "out.onnx")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_result_keeps_its_config_and_names_the_vocabulary() -> None:
    config = OptimizeConfig.from_dict({"default": {"scheme": "lut", "bits": 4}, "passes": ["share", "cluster"]})
    result = optimize(DIGITS_DIR / "digits_cnn.onnx", config)
    assert result.config is config
    assert config.default.scheme == "codebook" and config.passes == ("share", "compress")
    assert {t.scheme for t in result.report.compressed} == {"codebook"}
    assert [p.name for p in result.report.passes] == ["share", "compress"]
