"""Stage gate: the candidate's test metrics against the thresholds in params.yaml, the production model
(champion) scored on the same test rows, and the data-validation result.

    python -m pipelines.stages.gate      (or `mtl gate`)

Writes reports/gate.json with every rule, its observed value, bound and outcome; prints a table;
exits 1 when any rule fails, so `dvc repro`, a Prefect flow or any CI stops there. It never touches the
registry: promotion is `mtl promote`, which re-checks the gate against the production model of that moment.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipelines.gate import GateReport
from pipelines.io import GATE_REPORT
from pipelines.params import Params
from pipelines.registry import run_gate
from pipelines.stages._entry import StageError, console, stage_main


class GateFailed(StageError):
    """At least one gate rule failed."""


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def gate_table(report: GateReport) -> Table:
    title = "Deployment gate " + (f"(champion: v{report.champion})" if report.champion else "(no champion yet)")
    table = Table("kind", "rule", "observed", "bound", "outcome", "note", title=title)
    for r in report.rules:
        table.add_row(r.kind, r.rule, _fmt(r.observed), _fmt(r.bound),
                      "[green]pass[/]" if r.passed else "[red]FAIL[/]", r.note)
    return table


def run(params: Params, root: Path) -> GateReport:
    try:
        report = run_gate(params, root)
    except FileNotFoundError as exc:
        raise StageError(str(exc)) from None
    (root / GATE_REPORT).parent.mkdir(parents=True, exist_ok=True)
    (root / GATE_REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    # Rich wraps to 80 columns when not on a terminal (CI, dvc repro logs); the table needs more to stay legible.
    (console if console.is_terminal else Console(stderr=True, width=160)).print(gate_table(report))
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"gate: {verdict} ({sum(r.passed for r in report.rules)}/{len(report.rules)} rules) -> {GATE_REPORT}")
    if not report.passed:
        raise GateFailed("gate failed: " + ", ".join(r.rule for r in report.failed))
    return report


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
