"""Config overrides: a tensor read by several op types takes all their overrides; disagreement is an error."""

from __future__ import annotations

import pytest

from onnx_share.config import OptimizeConfig
from onnx_share.errors import OnnxShareError


def test_conflicting_op_type_overrides_on_a_tied_tensor_raise_naming_both_rules() -> None:
    config = OptimizeConfig.from_dict({"op_types": {"Gather": {"bits": 8}, "MatMul": {"bits": 4}}})
    with pytest.raises(OnnxShareError) as error:
        config.spec_for("embeddings", ["Gather", "MatMul"])
    message = str(error.value)
    assert "'embeddings'" in message
    assert "op_types['Gather'] sets bits=8" in message and "op_types['MatMul'] sets bits=4" in message


def test_non_conflicting_op_type_overrides_merge() -> None:
    config = OptimizeConfig.from_dict(
        {"op_types": {"Gather": {"bits": 6}, "MatMul": {"granularity": "channel", "bits": 6}}}
    )
    spec = config.spec_for("embeddings", ["MatMul", "Gather"])
    assert (spec.bits, spec.granularity) == (6, "channel")


def test_a_tensor_glob_settles_a_conflict_between_op_types() -> None:
    config = OptimizeConfig.from_dict(
        {"op_types": {"Gather": {"bits": 8}, "MatMul": {"bits": 4}}, "tensors": {"emb*": {"bits": 5}}}
    )
    assert config.spec_for("embeddings", ["Gather", "MatMul"]).bits == 5
    assert config.spec_for("other", ["MatMul"]).bits == 4


def test_tensor_globs_apply_in_order_the_last_match_winning() -> None:
    config = OptimizeConfig.from_dict({"tensors": {"*": {"bits": 4}, "fc*": {"bits": 6}}})
    assert config.spec_for("fc1.weight", ["Gemm"]).bits == 6
    assert config.spec_for("conv1.weight", ["Conv"]).bits == 4


def test_old_scheme_and_pass_names_are_read() -> None:
    config = OptimizeConfig.from_dict({"default": {"scheme": "lut"}, "passes": ["fold-qdq", "cluster"]})
    assert config.default.scheme == "codebook"
    assert config.pass_names == ("fold-qdq", "compress")
    assert OptimizeConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("data", "message"), [
    ({"default": {"bits": True}}, "default.bits must be an integer, got True"),
    ({"include": "W1"}, "config.include must be a list of strings, got 'W1'"),
    ({"passes": "share,cluster"}, "config.passes must be a list of strings or null, got 'share,cluster'"),
    ({"default": {"clusters": "16"}}, "default.clusters must be an integer or null, got '16'"),
    ({"default": {"group_size": "big"}}, "default.group_size must be an integer, got 'big'"),
    ({"op_types": ["MatMul"]}, "config.op_types must be a mapping"),
    ({"op_types": {"MatMul": {"bits": "4"}}}, "op_types['MatMul'].bits must be an integer, got '4'"),
    ({"validation": {"min_cosine": "high"}}, "validation.min_cosine must be a number, got 'high'"),
    ({"validation": {"samples": 0}}, "validation.samples must be at least 1, got 0"),
    ({"prune": {"sparse": "yes"}}, "prune.sparse must be true or false, got 'yes'"),
])
def test_config_values_are_type_checked_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(OnnxShareError) as error:
        OptimizeConfig.from_dict(data)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"default": {"scheme": "uniform", "bits": 4, "symmetric": False}}, "default asks for an asymmetric grid"),
        ({"default": {"scheme": "uniform", "bits": 8}, "op_types": {"Gather": {"bits": 2}}},
         r"op_types\['Gather'\] asks for a 2-bit grid"),
        ({"default": {"scheme": "uniform", "bits": 4, "group_size": 32}}, "INT4 blocks of 32"),
    ],
)
def test_tensorrt_target_refuses_grids_tensorrt_cannot_run(config: dict, message: str) -> None:
    with pytest.raises(OnnxShareError, match=message):
        OptimizeConfig.from_dict({**config, "target": "tensorrt"})
    OptimizeConfig.from_dict({**config, "target": "onnxruntime"})  # fine elsewhere


def test_target_is_checked_and_round_trips() -> None:
    with pytest.raises(OnnxShareError, match="target must be one of portable, onnxruntime, tensorrt"):
        OptimizeConfig.from_dict({"target": "openvino"})
    config = OptimizeConfig.from_dict({"target": "tensorrt", "default": {"scheme": "uniform", "bits": 4}})
    assert OptimizeConfig.from_dict(config.to_dict()) == config
