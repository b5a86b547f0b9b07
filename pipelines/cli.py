"""The `mtl` command.

    mtl run        the training pipeline as a Prefect flow (one task per DVC stage)
    mtl gate       check metrics/test.json against the gate; exit 1 on failure
    mtl summary    print the latest test metrics, the gate verdict and where the reports are
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands import register_all

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-task learning pipeline with task attention.")
console = Console()


@app.command()
def run(root: Path = typer.Option(Path("."), help="project root (holds dvc.yaml and params.yaml)")) -> None:
    """Run the training pipeline as a Prefect flow."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from pipelines.flows import StageFailed, training_pipeline

    try:
        training_pipeline(root=str(root))
    except StageFailed as exc:
        console.print(f"[bold red]pipeline failed:[/] {exc}")
        raise typer.Exit(1) from None
    summary(root)


@app.command()
def gate(root: Path = typer.Option(Path("."), help="project root")) -> None:
    """Check the test metrics against the gate rules in params.yaml (exit 0 pass, 1 fail)."""
    from pipelines.stages import gate as gate_stage
    from pipelines.stages._entry import stage_main

    os.chdir(root)
    stage_main(gate_stage.run)


@app.command()
def summary(root: Path = typer.Option(Path("."), help="project root")) -> None:
    """Print each task's test metrics, the gate verdict and where the reports and plots are."""
    metrics_path, gate_path = root / "metrics/test.json", root / "reports/gate.json"
    if not metrics_path.is_file():
        console.print("no test metrics yet (metrics/test.json): run `dvc repro` or `mtl run`")
        raise typer.Exit(1)
    metrics = json.loads(metrics_path.read_text())
    table = Table("task", *sorted({m for v in metrics.values() for m in v}), title="Test metrics")
    names = sorted({m for v in metrics.values() for m in v})
    for task_name, values in metrics.items():
        table.add_row(task_name, *[f"{values[m]:.4f}" if m in values else "" for m in names])
    console.print(table)
    if gate_path.is_file():
        report = json.loads(gate_path.read_text())
        verdict = "[bold green]PASSED[/]" if report["passed"] else "[bold red]FAILED[/]"
        console.print(f"gate: {verdict}  ({gate_path})")
    else:
        console.print("gate: not run yet")
    console.print(
        "reports: reports/validation/summary.json, reports/gate.json, metrics/train.json, metrics/test.json\n"
        "plots:   plots/attention.png (task attention), plots/roc/, plots/precision_recall/, plots/calibration/,\n"
        "         plots/confusion/, dvclive/plots/metrics/ (training curves); `dvc plots show` renders them all"
    )


register_all(app)

if __name__ == "__main__":
    app()
