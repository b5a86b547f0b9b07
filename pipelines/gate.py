"""The deployment gate: rules over the evaluation metrics, each recorded with its observed value."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pipelines.params import GateConfig, metric_is_lower_better


@dataclass
class RuleResult:
    rule: str
    task: str
    metric: str
    observed: float | None
    bound: float
    comparison: str
    passed: bool


@dataclass
class GateReport:
    passed: bool
    rules: list[RuleResult]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "rules": [asdict(r) for r in self.rules]}


def check_thresholds(metrics: dict[str, dict[str, float]], config: GateConfig) -> list[RuleResult]:
    """Absolute bounds: ``>=`` for higher-is-better metrics, ``<=`` for the others. A missing or NaN
    metric fails its rule (a gate must never pass on absent evidence)."""
    results = []
    for task, rules in config.thresholds.items():
        for metric, bound in rules.items():
            observed = metrics.get(task, {}).get(metric)
            lower_better = metric_is_lower_better(metric)
            comparison = "<=" if lower_better else ">="
            ok = observed is not None and not math.isnan(observed) and (
                observed <= bound if lower_better else observed >= bound
            )
            results.append(RuleResult(f"{task}.{metric} {comparison} {bound:g}", task, metric, observed, bound,
                                      comparison, bool(ok)))
    return results


def evaluate_gate(metrics: dict[str, dict[str, float]], config: GateConfig) -> GateReport:
    rules = check_thresholds(metrics, config)
    return GateReport(passed=all(r.passed for r in rules), rules=rules)
