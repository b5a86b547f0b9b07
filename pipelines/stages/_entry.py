"""The shared command-line entry of every stage: load params, run, turn known errors into a clear
message and a non-zero exit (no traceback for a user's mistake)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from pipelines.params import Params, ParamsError, load_params

console = Console(stderr=True)


class StageError(RuntimeError):
    """A stage failed for a reason the user can act on (bad data, failed gate, missing input)."""


def stage_main(run: Callable[[Params, Path], object], *, params_path: str = "params.yaml") -> None:
    root = Path.cwd()
    try:
        params = load_params(root / params_path)
        run(params, root)
    except (ParamsError, StageError, ValueError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
