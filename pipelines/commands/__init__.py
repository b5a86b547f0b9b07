"""Sub-commands of `mtl`, one module per area. Each module defines ``register(app: typer.Typer)``;
``pipelines.cli`` calls every one, so adding an area never edits the CLI module."""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not an area
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is None:
            raise RuntimeError(f"{module.__name__} has no register(app) function")
        register(app)
