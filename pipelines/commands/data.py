"""Data commands: `mtl profile` and `mtl data validate | ingest | versions | drift`.

    mtl profile                 reference profile of data.train -> validate.profile (review and commit it)
    mtl data validate FILE...   run the contract (and drift) on files; exit 1 if any fails; moves nothing
    mtl data ingest             validate each file in data/incoming/: accept (DVC version + git commit) or
                                quarantine; exit 1 if any was rejected
    mtl data versions           the data set's versions: git revision, DVC hash, rows, time
    mtl data drift FILE         PSI per feature and label against the profile; exit 1 past a threshold
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands._common import ROOT, fail, load_params_or_exit

# Wide when piped (logs, CI), so that paths and hashes are not cut.
console = Console(width=None if Console().is_terminal else 200)
data_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Data contracts, incoming batches, data versions and drift.")


def _params(root: Path):
    return load_params_or_exit(root, console)


def _fail(exc: Exception) -> typer.Exit:
    return fail(exc, console)


def profile(root: Path = ROOT,
            source: Annotated[Path | None, typer.Option(help="reference data (default data.train)")] = None,
            out: Annotated[Path | None, typer.Option(help="profile file (default validate.profile)")] = None) -> None:
    """Derive the reference profile (categories, ranges, bins, null and duplicate rates) from the training data."""
    from pipelines.io import read_table
    from pipelines.profile import build_profile, file_md5, write_profile

    params = _params(root)
    source = source or params.data.train
    out = out or params.validate_.profile
    if out is None:
        raise _fail(ValueError("validate.profile is not set in params.yaml; pass --out"))
    try:
        frame = read_table(root / source, params)
        result = build_profile(frame, params, source=str(source), source_md5=file_md5(root / source))
    except ValueError as exc:
        raise _fail(exc) from None
    write_profile(result, root / out)
    console.print(f"profile: {len(result['columns'])} columns of {source} ({result['rows']} rows) -> {out}; "
                  "review the diff and commit it")


@data_app.command("validate")
def validate(files: Annotated[list[Path], typer.Argument(help="CSV, CSV.gz or Parquet files")],
             root: Path = ROOT) -> None:
    """Check files against the contract and drift thresholds, without moving them. Exit 1 if any is rejected."""
    from pipelines.datasets import validate_batch

    params = _params(root)
    rejected = 0
    for path in files:
        try:
            result = validate_batch(path, params, root)
        except ValueError as exc:
            raise _fail(exc) from None
        _print_result(result)
        rejected += not result.accepted
    raise typer.Exit(1 if rejected else 0)


def _print_result(result) -> None:
    status = "[green]accepted[/]" if result.accepted else "[bold red]rejected[/]"
    console.print(f"{result.path}: {status} ({result.rows if result.rows is not None else '-'} rows)")
    for message in result.reasons:
        console.print(f"[red]failure:[/] {message}", highlight=False, soft_wrap=True)
    for message in result.warnings:
        console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@data_app.command("ingest")
def ingest(root: Path = ROOT, commit: bool = typer.Option(True, help="commit each accepted batch's .dvc file"),
           push: bool = typer.Option(False, help="`dvc push` after accepting")) -> None:
    """Validate every file in data/incoming/: accept it as a new DVC data version, or quarantine it."""
    from pipelines.datasets import DatasetError, process_incoming

    params = _params(root)
    try:
        outcomes = process_incoming(params, root, commit=commit)
    except (ValueError, DatasetError) as exc:
        raise _fail(exc) from None
    if not outcomes:
        console.print("ingest: nothing in data/incoming/")
        return
    table = Table("file", "status", "rows", "where / why", title="Incoming batches")
    for o in outcomes:
        if o["status"] == "accepted":
            where = f"{o['version']['path']} (version {o['version']['version']}, {o['version']['rev']})"
            table.add_row(o["file"], "[green]accepted[/]", str(o["rows"]), where)
        else:
            table.add_row(o["file"], "[bold red]rejected[/]", str(o["rows"] or "-"),
                          f"{o['quarantine']}/ ({len(o['reasons'])} failed rules, see report.json there)")
    console.print(table)
    # The reasons in full, one per line and never wrapped, so they can be read and grepped.
    for o in outcomes:
        for message in o.get("reasons", []):
            console.print(f"[red]rejected:[/] {message}", highlight=False, soft_wrap=True)
        for message in o.get("warnings", []):
            console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    if push and any(o["status"] == "accepted" for o in outcomes):
        import subprocess
        import sys

        proc = subprocess.run([sys.executable, "-m", "dvc", "push"], cwd=root, capture_output=True, text=True,
                              env={**os.environ, "DVC_NO_ANALYTICS": "1"})
        console.print(proc.stdout.strip() or proc.stderr.strip())
        if proc.returncode != 0:
            raise typer.Exit(1)
    raise typer.Exit(1 if any(o["status"] == "rejected" for o in outcomes) else 0)


@data_app.command("versions")
def versions(root: Path = ROOT, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the data set's versions: the training file, then each accepted batch (git revision, DVC hash, rows)."""
    from dataclasses import asdict

    from pipelines.datasets import list_versions

    params = _params(root)
    found = list_versions(params, root)
    if as_json:
        print(json.dumps([asdict(v) for v in found], indent=2))
        return
    table = Table("version", "path", "git rev", "time", "DVC hash (md5)", "rows", "total rows", "in workspace",
                  title="Data versions")
    for v in found:
        table.add_row(str(v.version), v.path, v.rev, v.time, v.md5, str(v.rows), str(v.total_rows),
                      "yes" if v.present else "no (dvc pull)")
    console.print(table)


@data_app.command("drift")
def drift(file: Annotated[Path, typer.Argument(help="a batch file")], root: Path = ROOT) -> None:
    """PSI per feature and label between the reference profile and FILE; exit 1 if any passed its threshold."""
    from pipelines.drift import drift_report
    from pipelines.io import read_table
    from pipelines.profile import profile_for

    params = _params(root)
    try:
        profile = profile_for(params, root)
        if profile is None:
            raise ValueError("validate.profile is not set in params.yaml")
        report = drift_report(read_table(file, params), profile, params, file=str(file))
    except ValueError as exc:
        raise _fail(exc) from None
    table = Table("column", "role", "PSI", "threshold", "drifted", title=f"Drift of {file}")
    for c in report.columns:
        value = "-" if c.value is None else f"{c.value:.4f}"
        table.add_row(c.column, c.role, value, f"{c.threshold:g}", "[bold red]yes[/]" if c.drifted else "no")
    console.print(table)
    raise typer.Exit(1 if report.drifted else 0)


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
    app.add_typer(data_app, name="data")
