"""Gate expressions over a model's config."""

from __future__ import annotations

import pytest

from modelhaul import promotion_gate as gate
from modelhaul.config import ModelConfig
from modelhaul.errors import GateError

CFG = ModelConfig.from_dict({"metrics": {
    "training": [{"name": "accuracy", "value": "0.93"}, {"name": "loss", "value": "0.21"}],
    "test": [{"name": "f1", "value": "0.85"}, {"name": "accuracy", "value": "0.88"}],
}})


@pytest.mark.parametrize("expr, passed", [
    ("accuracy >= 0.9", True),
    ("accuracy>0.95", False),
    ("test.f1 > 0.8", True),
    ("test.accuracy >= 0.9", False),  # the group picks the test value, not training's
    ("loss < 0.3", True),
    ("loss <= 0.21", True),
    ("loss == 0.21", True),
    ("loss != 0.21", False),
    ("accuracy >= 9e-1 and loss < 0.3", True),
    ("accuracy >= 0.9 and loss < 0.2", False),
])
def test_conditions(expr, passed):
    result = gate.evaluate(expr, CFG)
    assert result.passed is passed
    assert len(result.reasons) == expr.count(" and ") + 1


def test_a_list_of_conditions_must_all_pass_and_says_which_failed():
    result = gate.evaluate(["accuracy >= 0.9", "test.f1 > 0.9"], CFG)
    assert result.passed is False
    assert result.reasons[0] == "accuracy >= 0.9: accuracy is 0.93"
    assert result.reasons[1] == "test.f1 > 0.9: test.f1 is 0.85 — not met"


@pytest.mark.parametrize("expr", ["accuracy >", "accuracy => 0.9", ">= 0.9", "accuracy >= high",
                                  "accuracy >= 0.9 or loss < 1", "accuracy ~ 1"])
def test_a_malformed_expression_is_an_error_that_names_it(expr):
    with pytest.raises(GateError) as err:
        gate.evaluate(expr, CFG)
    assert "malformed" in str(err.value)


def test_a_missing_metric_fails_the_gate_with_a_reason():
    result = gate.evaluate("precision >= 0.5", CFG)
    assert result.passed is False
    assert "no numeric metric 'precision'" in result.reasons[0]
    assert "accuracy, f1, loss" in result.reasons[0]


def test_no_gate_passes():
    assert gate.evaluate(None, CFG).passed is True
    assert gate.evaluate([], CFG).passed is True


def test_beats_higher_and_lower_is_better():
    old = ModelConfig.from_dict({"metrics": {"accuracy": 0.90, "loss": 0.25}})
    assert gate.beats("accuracy", CFG, old, 0.02)[0] is True
    ok, why = gate.beats("accuracy", CFG, old, 0.05)
    assert ok is False and "improvement 0.03" in why
    assert gate.beats("-loss", CFG, old, 0.01)[0] is True
    assert gate.beats("-loss", old, CFG, 0.0)[0] is False


def test_beats_without_incumbent_or_metric():
    assert gate.beats("accuracy", CFG, None)[0] is True
    ok, why = gate.beats("accuracy", CFG, ModelConfig())
    assert ok is False and "no metric 'accuracy' to compare" in why
    with pytest.raises(GateError):
        gate.beats("-", CFG, None)
