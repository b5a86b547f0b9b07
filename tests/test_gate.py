"""The gate's rules, one family at a time: absolute thresholds, champion versus challenger, data validation."""

from __future__ import annotations

import math

from pipelines.gate import Champion, evaluate_gate
from pipelines.params import GateConfig

PRIMARY = {"income": "roc_auc", "relationship": "macro_f1", "price": "rmse"}
CANDIDATE = {"income": {"roc_auc": 0.90, "log_loss": 0.30}, "relationship": {"macro_f1": 0.50},
             "price": {"rmse": 10.0}}
VALID = {"success": True, "files": [{"file": "a.csv", "failed": 0}]}


def config(**kw) -> GateConfig:
    return GateConfig.model_validate(kw)


def by_rule(report, kind):
    return {r.rule: r for r in report.rules if r.kind == kind}


def test_thresholds_use_the_metric_direction_and_fail_on_missing_or_nan():
    cfg = config(thresholds={"income": {"roc_auc": 0.85, "log_loss": 0.25}, "price": {"rmse": 12}},
                 require_valid_data=False)
    report = evaluate_gate(CANDIDATE, cfg)
    rules = by_rule(report, "threshold")
    assert rules["income.roc_auc >= 0.85"].passed
    assert not rules["income.log_loss <= 0.25"].passed  # lower is better: 0.30 > 0.25
    assert rules["price.rmse <= 12"].passed
    assert not report.passed
    nan = evaluate_gate({"income": {"roc_auc": math.nan}}, config(thresholds={"income": {"roc_auc": 0.5}},
                                                                   require_valid_data=False))
    assert not nan.passed
    missing = evaluate_gate({}, config(thresholds={"income": {"roc_auc": 0.5}}, require_valid_data=False))
    assert not missing.passed and missing.rules[0].observed is None


def test_no_champion_passes_relative_rules_with_an_explicit_note():
    report = evaluate_gate(CANDIDATE, config(champion={"min_improvement": 0.01}), primary=PRIMARY, validation=VALID)
    relative = [r for r in report.rules if r.kind in ("champion", "improvement")]
    assert len(relative) == 4 and all(r.passed for r in relative)
    assert all("no champion" in r.note for r in relative)
    assert report.passed and report.champion is None


def test_challenger_worse_than_champion_beyond_tolerance_fails_within_tolerance_passes():
    champion = Champion(3, {"income": {"roc_auc": 0.905}, "relationship": {"macro_f1": 0.58},
                            "price": {"rmse": 9.5}})
    report = evaluate_gate(CANDIDATE, config(champion={"tolerance": 0.01, "tolerances": {"price": {"rmse": 1.0}}}),
                           champion=champion, primary=PRIMARY, validation=VALID)
    rules = by_rule(report, "champion")
    income = rules["income.roc_auc >= champion - 0.01"]
    assert income.passed and math.isclose(income.bound, 0.895) and "champion v3" in income.note
    assert not rules["relationship.macro_f1 >= champion - 0.01"].passed  # 0.50 < 0.58 - 0.01
    price = rules["price.rmse <= champion + 1"]  # lower is better: bound is champion + tolerance
    assert price.passed and math.isclose(price.bound, 10.5)
    assert not report.passed and report.champion == 3
    assert report.to_dict()["champion_metrics"]["income"]["roc_auc"] == 0.905


def test_min_improvement_needs_one_metric_better_by_the_margin():
    champion = Champion(1, {"income": {"roc_auc": 0.89}, "relationship": {"macro_f1": 0.50}, "price": {"rmse": 10}})
    ok = evaluate_gate(CANDIDATE, config(champion={"min_improvement": 0.005}), champion=champion, primary=PRIMARY,
                       validation=VALID)
    assert ok.passed  # income improved by 0.01
    strict = evaluate_gate(CANDIDATE, config(champion={"min_improvement": 0.02}), champion=champion,
                           primary=PRIMARY, validation=VALID)
    improvement = by_rule(strict, "improvement")
    (rule,) = improvement.values()
    assert not rule.passed and math.isclose(rule.observed, 0.01)


def test_data_validation_is_a_rule():
    cfg = config()
    assert evaluate_gate({}, cfg, validation=VALID).passed
    failed = evaluate_gate({}, cfg, validation={"success": False, "files": [{"file": "a.csv", "failed": 2}]})
    (rule,) = by_rule(failed, "data").values()
    assert not failed.passed and rule.observed == 2 and "a.csv" in rule.note
    missing = evaluate_gate({}, cfg, validation=None)
    assert not missing.passed and "not found" in missing.rules[0].note
    assert evaluate_gate({}, config(require_valid_data=False), validation=None).passed
