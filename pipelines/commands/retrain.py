"""`mtl retrain` (one cycle now) and `mtl serve` (the scheduled deployment on a Prefect server)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def retrain(
        root: Path = typer.Option(Path("."), help="project root"),
        force: bool = typer.Option(False, "--force", help="run a cycle even without new data"),
    ) -> None:
        """Run one retraining cycle now: validate incoming data, fine-tune, gate, promote or keep."""
        from pipelines.retrain import retrain as retrain_flow

        state = retrain_flow(root=str(root), force=force or None, return_state=True)
        if state.is_failed():
            console.print(f"[bold red]retrain cycle failed:[/] {state.message}")
            raise typer.Exit(1)
        report = state.result()
        console.print(json.dumps({k: report[k] for k in ("status", "message", "mode", "production_before",
                                                         "production_after")}, indent=2))

    @app.command()
    def serve(
        root: Path = typer.Option(Path("."), help="project root"),
        host: str = typer.Option("127.0.0.1", help="Prefect server address (loopback only)"),
        port: int = typer.Option(4200, help="Prefect server port"),
        cron: str | None = typer.Option(None, help="override retrain.schedule from params.yaml"),
    ) -> None:
        """Start (or connect to) a Prefect server and serve the `retrain` deployment on its cron schedule."""
        from pipelines.params import load_params
        from pipelines.prefect_server import ensure_server

        params = load_params(root / "params.yaml")
        schedule = cron or params.retrain.schedule
        server = ensure_server(host=host, port=port)
        os.environ["PREFECT_API_URL"] = server.api_url
        console.print(f"Prefect UI/API: {server.api_url.removesuffix('/api')}  schedule: {schedule!r}")
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from pipelines.retrain import serve as serve_deployment

        try:
            with temporary_settings({PREFECT_API_URL: server.api_url}):
                serve_deployment(root=root, cron=schedule)
        finally:
            server.stop()
