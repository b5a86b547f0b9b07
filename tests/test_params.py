"""The params.yaml loader: the shipped file is valid; bad keys and values fail with their path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipelines.params import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_are_valid(raw):
    params = parse_params(raw)
    assert list(params.tasks) == ["income", "never_married", "relationship"]
    assert params.tasks["relationship"].type == "multiclass"
    assert "marital-status" not in params.features.input_columns
    assert params.model.attention.lambda_ == pytest.approx(0.01)


def _error(raw: dict, mutate) -> str:
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(ParamsError) as info:
        parse_params(bad)
    return str(info.value)


def test_bad_task_type_names_path_and_allowed_values(raw):
    msg = _error(raw, lambda p: p["tasks"]["income"].update(type="binaryy"))
    assert "tasks.income.type" in msg
    assert "'binary', 'multiclass' or 'regression'" in msg


def test_unknown_key_is_rejected_with_its_path(raw):
    msg = _error(raw, lambda p: p["model"]["attention"].update(temprature=0.3))
    assert "model.attention.temprature" in msg
    assert "Extra inputs are not permitted" in msg


def test_unknown_architecture_lists_the_registered_ones(raw):
    msg = _error(raw, lambda p: p["model"].update(architecture="transformer"))
    assert "model" in msg and "transformer" in msg and "shared_bottom" in msg and "task_attention" in msg


def test_unknown_weighting(raw):
    msg = _error(raw, lambda p: p["train"].update(weighting="magic"))
    assert "train" in msg and "magic" in msg and "equal" in msg


def test_negative_values_rejected(raw):
    assert "train.learning_rate" in _error(raw, lambda p: p["train"].update(learning_rate=-1))
    assert "model.attention.temperature" in _error(raw, lambda p: p["model"]["attention"].update(temperature=0))


def test_label_column_as_input_is_a_leak(raw):
    msg = _error(raw, lambda p: p["features"]["categorical"].append("relationship"))
    assert "relationship" in msg


def test_binary_task_needs_positive_class(raw):
    msg = _error(raw, lambda p: p["tasks"]["income"].pop("positive"))
    assert "tasks.income" in msg and "positive" in msg


def test_gate_rule_on_unknown_metric(raw):
    msg = _error(raw, lambda p: p["gate"]["thresholds"]["income"].update(macro_f1=0.5))
    assert "gate.thresholds.income.macro_f1" in msg and "roc_auc" in msg


def test_overrides_and_missing_file(tmp_path):
    params = load_params(ROOT / "params.yaml", overrides={"train": {"epochs": 1}})
    assert params.train.epochs == 1
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
