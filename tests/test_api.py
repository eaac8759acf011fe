"""The Python API: pinned outputs of the default configs, and what ``OptimizeResult`` keeps."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import DIGITS_DIR

from onnx_share.api import optimize
from onnx_share.config import OptimizeConfig

# sha256 of the saved digits model per config. Fixed before the architecture change; updated since when saving
# stopped writing a value_info entry per initializer (the models were otherwise byte-identical), and when auto
# granularity started splitting codebooks into channel groups within half a bit per weight (default, codebook-4,
# prune-codebook-4; the explicit layouts stayed byte-identical). Any change to what optimize writes for these
# configs must be deliberate, with the reason in the commit.
PINNED = {
    "default": ({}, "5c125f5f40a5f188ae5be8de0b4898941c24b93ad092be170675f28dac54d472"),
    "codebook-4": ({"default": {"bits": 4}}, "450ff925f1f8bd8f24c8a9576b988c0993990f142993b0c8c96a9c496ec29c5a"),
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
        "c2b23ca64d8989d287c173ac4bd4be77e353f4dec311dde4248743cb0b3c51da",
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
