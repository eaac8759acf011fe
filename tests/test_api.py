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
# granularity started splitting codebooks into channel groups within a quarter of a bit per weight (default, codebook-4,
# prune-codebook-4; the explicit layouts stayed byte-identical). Any change to what optimize writes for these
# configs must be deliberate, with the reason in the commit.
PINNED = {
    "default": ({}, "b2311e0664d2df7d98d9eff562ba6358df0b99c42a47b8acf48a93c038e30438"),
    "codebook-4": ({"default": {"bits": 4}}, "b209ae878489d8bb62c6a38021f8c8856e52c93424967ca410e9c8c504095058"),
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
        "e81e1c1b12f24b11cd31bc1844031b0f8f016c3858a1ec6bdfb45b087bf3da3a",
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


@pytest.mark.parametrize("config", [{"default": {"bits": 4}}, {"default": {"scheme": "uniform", "bits": 4}}])
def test_outputs_are_byte_identical_for_any_number_of_jobs(config: dict, tmp_path: Path) -> None:
    digests = set()
    for jobs in (1, 2, 3):
        path = optimize(DIGITS_DIR / "digits_cnn.onnx", {**config, "jobs": jobs, "min_elements": 64}).save(
            tmp_path / f"{jobs}.onnx"
        )
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
