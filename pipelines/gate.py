"""The deployment gate: rules over the evaluation metrics, each recorded with its observed value and bound.

Three families of rules, all configured under ``gate`` in params.yaml:

- ``threshold``: absolute bounds per task and metric (``income.roc_auc >= 0.85``);
- ``champion``: the candidate against the production model scored on the same test rows (no compared metric
  worse than the champion's by more than a tolerance; optionally at least one better by a margin). With no
  champion yet these rules pass, with an explicit "no champion" note;
- ``data``: the data-validation summary of this run must report success.

A missing or NaN value fails its rule: a gate never passes on absent evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pipelines.params import GateConfig, metric_is_lower_better

Metrics = dict[str, dict[str, float]]


@dataclass
class RuleResult:
    rule: str
    task: str | None
    metric: str | None
    observed: float | None
    bound: float | None
    comparison: str
    passed: bool
    kind: str = "threshold"  # threshold | champion | improvement | data
    note: str = ""


@dataclass
class Champion:
    """The production model's metrics on the same test rows as the candidate."""

    version: int
    metrics: Metrics
    fingerprint: str | None = None


@dataclass
class GateReport:
    passed: bool
    rules: list[RuleResult]
    candidate: str | None = None  # fingerprint of the candidate bundle the metrics belong to
    champion: int | None = None  # production version compared against (None: no champion)
    champion_metrics: Metrics = field(default_factory=dict)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return {"passed": self.passed, "candidate": self.candidate, "champion": self.champion,
                "champion_metrics": self.champion_metrics, "time": self.time,
                "rules": [asdict(r) for r in self.rules]}

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]


def _finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def check_thresholds(metrics: Metrics, config: GateConfig) -> list[RuleResult]:
    """Absolute bounds: ``>=`` for higher-is-better metrics, ``<=`` for the others."""
    results = []
    for task, rules in config.thresholds.items():
        for metric, bound in rules.items():
            observed = metrics.get(task, {}).get(metric)
            lower_better = metric_is_lower_better(metric)
            comparison = "<=" if lower_better else ">="
            ok = _finite(observed) and (observed <= bound if lower_better else observed >= bound)
            results.append(RuleResult(f"{task}.{metric} {comparison} {bound:g}", task, metric, observed, bound,
                                      comparison, bool(ok), "threshold",
                                      "" if observed is not None else "metric missing from the evaluation"))
    return results


def compared_metrics(metrics: Metrics, primary: dict[str, str], config: GateConfig) -> dict[str, dict[str, float]]:
    """task -> metric -> tolerance: each task's primary metric at the default tolerance, plus overrides."""
    out: dict[str, dict[str, float]] = {}
    for task in metrics:
        if task in primary:
            out.setdefault(task, {})[primary[task]] = config.champion.tolerance
    for task, rules in config.champion.tolerances.items():
        out.setdefault(task, {}).update(rules)
    return out


def check_champion(metrics: Metrics, champion: Champion | None, primary: dict[str, str],
                   config: GateConfig) -> list[RuleResult]:
    """Relative rules: the candidate may not be worse than the champion by more than the tolerance.

    Args:
        metrics: the candidate's test metrics, task -> metric -> value.
        champion: the production model's metrics on the same rows, or None when there is no production model.
        primary: task -> primary metric (the metric compared when no tolerance names others).
        config: the gate section of params.yaml.
    """
    results: list[RuleResult] = []
    deltas: list[float] = []
    for task, rules in compared_metrics(metrics, primary, config).items():
        for metric, tolerance in rules.items():
            lower_better = metric_is_lower_better(metric)
            comparison = "<=" if lower_better else ">="
            observed = metrics.get(task, {}).get(metric)
            sign = "+" if lower_better else "-"
            name = f"{task}.{metric} {comparison} champion {sign} {tolerance:g}"
            if champion is None:
                results.append(RuleResult(name, task, metric, observed, None, comparison, True, "champion",
                                          "no champion: no production model yet"))
                continue
            reference = champion.metrics.get(task, {}).get(metric)
            if not _finite(reference):
                results.append(RuleResult(name, task, metric, observed, None, comparison, True, "champion",
                                          f"champion v{champion.version} has no {task}.{metric}"))
                continue
            bound = reference + tolerance if lower_better else reference - tolerance
            ok = _finite(observed) and (observed <= bound if lower_better else observed >= bound)
            if _finite(observed):
                deltas.append(reference - observed if lower_better else observed - reference)
            results.append(RuleResult(name, task, metric, observed, bound, comparison, bool(ok), "champion",
                                      f"champion v{champion.version}: {reference:.4f}"))
    margin = config.champion.min_improvement
    if margin is not None:
        name = f"at least one metric better than the champion by >= {margin:g}"
        if champion is None:
            results.append(RuleResult(name, None, None, None, margin, ">=", True, "improvement",
                                      "no champion: no production model yet"))
        else:
            best = max(deltas) if deltas else None
            results.append(RuleResult(name, None, None, best, margin, ">=", bool(best is not None and best >= margin),
                                      "improvement", f"best improvement over champion v{champion.version}"))
    return results


def check_validation(summary: dict | None) -> RuleResult:
    """The data-validation rule: the summary of this run's data checks must report success."""
    name = "data validation passed"
    if summary is None:
        return RuleResult(name, None, None, None, 0.0, "==", False, "data",
                          "reports/validation/summary.json not found: run the validate stage")
    failed = sum(int(f.get("failed", 0)) for f in summary.get("files", []))
    ok = bool(summary.get("success")) and failed == 0
    files = ", ".join(str(f.get("file")) for f in summary.get("files", []))
    return RuleResult(name, None, None, float(failed), 0.0, "==", ok, "data",
                      f"failed checks in {files}" if not ok else f"checked {files}")


def evaluate_gate(metrics: Metrics, config: GateConfig, *, champion: Champion | None = None,
                  primary: dict[str, str] | None = None, validation: dict | None = None,
                  candidate: str | None = None) -> GateReport:
    """Every rule of the gate, in order: thresholds, champion, data validation.

    Args:
        metrics: the candidate's test metrics.
        config: the gate section of params.yaml.
        champion: the production model's metrics on the same rows (None: no champion).
        primary: task -> primary metric; without it, no champion rules are built from defaults.
        validation: the parsed reports/validation/summary.json (None: missing; fails when required).
        candidate: fingerprint of the candidate bundle, recorded so promotion can check it.
    """
    rules = check_thresholds(metrics, config)
    rules += check_champion(metrics, champion, primary or {}, config)
    if config.require_valid_data:
        rules.append(check_validation(validation))
    return GateReport(passed=all(r.passed for r in rules), rules=rules, candidate=candidate,
                      champion=champion.version if champion else None,
                      champion_metrics=champion.metrics if champion else {})
