"""`mtl promote`, `mtl registry list|show`, `mtl rollback`, `mtl predict` (logic in pipelines.registry and
pipelines.predict; this module only parses arguments and prints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands._common import ROOT, fail, load_params_or_exit


def _wide(stderr: bool = False) -> Console:
    # Rich wraps to 80 columns off a terminal (CI logs, pipes); the registry tables need more to stay legible.
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)


console = _wide()
err = _wide(stderr=True)



def _params(root: Path):
    return load_params_or_exit(root, err)


def _fail(exc: Exception) -> typer.Exit:
    return fail(exc, err)


def _primary(record: dict) -> str:
    tasks = record.get("params", {}).get("tasks", {})
    parts = []
    for task, values in record.get("metrics", {}).items():
        metric = tasks.get(task, {}).get("primary_metric")
        if metric in values:
            parts.append(f"{task}.{metric}={values[metric]:.4f}")
    return ", ".join(parts)


def register(app: typer.Typer) -> None:
    registry_app = typer.Typer(no_args_is_help=True, help="The model registry: versions and their lineage.")
    app.add_typer(registry_app, name="registry")

    @app.command()
    def promote(root: Path = ROOT) -> None:
        """Register models/candidate and make it production; only after a passing gate (exit 1 otherwise)."""
        from mtl_core.bundle import BundleError
        from pipelines.registry import RegistryError, promote_candidate
        from pipelines.stages.gate import gate_table

        params = _params(root)
        try:
            result = promote_candidate(params, root)
        except (RegistryError, BundleError, FileNotFoundError) as exc:
            raise _fail(exc) from None
        if result.gate is not None:
            console.print(gate_table(result.gate))
        console.print(f"promote: {result.message}")

    @app.command()
    def rollback(root: Path = ROOT) -> None:
        """Make the previous production version production again."""
        from pipelines.registry import RegistryError, open_registry

        registry = open_registry(_params(root), root)
        try:
            state = registry.rollback()
        except RegistryError as exc:
            raise _fail(exc) from None
        console.print(f"rollback: v{state['previous']} -> v{state['version']} is now production")

    @registry_app.command("list")
    def list_versions(root: Path = ROOT) -> None:
        """Every registered version, newest first; the production one is marked."""
        from pipelines.registry import open_registry

        registry = open_registry(_params(root), root)
        production = registry.production()
        table = Table("version", "stage", "created", "git revision", "gate", "primary metrics",
                      title=f"Model registry ({registry.path})")
        for v in reversed(registry.versions()):
            r = registry.record(v)
            gate = r.get("gate", {})
            table.add_row(f"v{v}", "[bold green]production[/]" if v == production else "",
                          r.get("created", ""), (r.get("git_revision") or "")[:12],
                          "passed" if gate.get("passed") else "failed", _primary(r))
        console.print(table if registry.versions() else f"no versions in {registry.path} yet")

    @registry_app.command("show")
    def show(version: int = typer.Argument(..., help="version number, e.g. 1"), root: Path = ROOT) -> None:
        """The full lineage record of one version (JSON)."""
        from pipelines.registry import RegistryError, open_registry

        registry = open_registry(_params(root), root)
        try:
            record = registry.record(version)
        except RegistryError as exc:
            raise _fail(exc) from None
        record = {**record, "production": registry.production() == version,
                  "bundle": str(registry.bundle_dir(version)),
                  "events": [e for e in registry.events() if e.get("version") == version]}
        console.print_json(json.dumps(record, default=str))

    @app.command()
    def predict(
        input: Annotated[Path, typer.Option("--input", "-i", help="CSV, TSV (optionally .gz) or Parquet file")],
        output: Annotated[Path, typer.Option("--output", "-o", help=".csv, .csv.gz or .parquet")],
        model: Annotated[int | None, typer.Option("--model", help="registry version (default: production)")] = None,
        strict: Annotated[bool, typer.Option(help="exit 1 when any row cannot be scored")] = False,
        root: Path = ROOT,
    ) -> None:
        """Score a file: per task the probabilities and the predicted class or value."""
        from mtl_core.bundle import BundleError
        from pipelines.predict import PredictInputError, predict_file
        from pipelines.registry import RegistryError

        params = _params(root)
        try:
            summary = predict_file(input, output, params, root, model)
        except (PredictInputError, RegistryError, BundleError) as exc:
            raise _fail(exc) from None
        console.print(f"predict: model v{summary.version}: {summary.scored}/{summary.rows} rows scored "
                      f"-> {summary.output}")
        if summary.rejected:
            err.print(f"[yellow]{summary.rejected} row(s) could not be scored[/] (kept in the output with an "
                      f"empty prediction and their `error`); first ones:", highlight=False)
            for line in summary.problems:
                err.print(f"  {line}", highlight=False, soft_wrap=True)
            if strict:
                raise typer.Exit(1)
