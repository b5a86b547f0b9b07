"""What every `mtl` sub-command module shares: the root option and turning errors into exit code 1."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

ROOT = typer.Option(Path("."), help="project root (holds params.yaml)")


def load_params_or_exit(root: Path, console: Console):
    """params.yaml of ``root``, or a clear error on ``console`` and exit code 1."""
    from pipelines.params import ParamsError, load_params

    try:
        return load_params(root / "params.yaml")
    except ParamsError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def fail(exc: Exception, console: Console) -> typer.Exit:
    """Print ``exc`` as an error and return the Exit(1) to raise."""
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(1)
