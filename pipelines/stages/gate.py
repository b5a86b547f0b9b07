"""Stage gate: compare the test metrics with the thresholds in params.yaml.

    python -m pipelines.stages.gate      (or `mtl gate`)

Writes reports/gate.json with every rule, its observed value, bound and outcome; prints a table;
exits 1 when any rule fails, so `dvc repro`, a Prefect flow or any CI stops there.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from pipelines.gate import GateReport, evaluate_gate
from pipelines.io import GATE_REPORT, TEST_METRICS
from pipelines.params import Params
from pipelines.stages._entry import StageError, console, stage_main


class GateFailed(StageError):
    """At least one gate rule failed."""


def run(params: Params, root: Path) -> GateReport:
    metrics_path = root / TEST_METRICS
    if not metrics_path.is_file():
        raise StageError(f"{TEST_METRICS}: not found; run the evaluate stage first")
    report = evaluate_gate(json.loads(metrics_path.read_text()), params.gate)
    (root / GATE_REPORT).parent.mkdir(parents=True, exist_ok=True)
    (root / GATE_REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    table = Table("rule", "observed", "outcome", title="Deployment gate")
    for r in report.rules:
        observed = "missing" if r.observed is None else f"{r.observed:.4f}"
        table.add_row(r.rule, observed, "[green]pass[/]" if r.passed else "[red]FAIL[/]")
    console.print(table)
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"gate: {verdict} ({sum(r.passed for r in report.rules)}/{len(report.rules)} rules) -> {GATE_REPORT}")
    if not report.passed:
        failed = ", ".join(r.rule for r in report.rules if not r.passed)
        raise GateFailed(f"gate failed: {failed}")
    return report


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
