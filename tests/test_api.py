"""The Python API: pinned outputs of the default configs, and what ``OptimizeResult`` keeps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import DIGITS_DIR

from onnx_share.api import optimize
from onnx_share.config import OptimizeConfig

# sha256 of the saved digits model per config. Fixed before the architecture change; updated once since, when
# saving stopped writing a value_info entry per initializer (the models were otherwise byte-identical). Any
# change to what optimize writes for these configs must be deliberate, with the reason in the commit.
PINNED = {
    "default": ({}, "a080c87265883ceda824f99b083d757ffad9cce41aec5cbfb6fdcd5ae096c4de"),
    "codebook-4": ({"default": {"bits": 4}}, "8c3c8a2f4800845910ffb752255c30a0eec8d2cf07bb5284b3ec8d907e46080d"),
    "uniform-4": (
        {"default": {"scheme": "uniform", "bits": 4}},
        "ab62115aa14c04e41c8eb5c81d8d55486d6d74e7d2d0049fa734f2f3f99f1185",
    ),
    "codebook-4-channel": (
        {"default": {"bits": 4, "granularity": "channel"}},
        "ede16157d38e47823ae039942ad19098ab986ef453e545fd8047aaac48c495e8",
    ),
    "prune-codebook-4": (
        {"default": {"bits": 4}, "prune": {"fraction": 0.5}},
        "2eb655561e9d8b1adeae47059ff45adcfa121ec1bfae9195a06b1b2dc712ac77",
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
