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
