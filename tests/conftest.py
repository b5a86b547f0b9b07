"""Shared fixtures. Integration tests run DVC, Prefect and Great Expectations for real, in temporary
copies of the project, never in the working tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# A small, fast configuration for pipeline runs in tests (real data, subsampled).
SMOKE_OVERRIDES = {
    "data": {"subsample": 1500},
    "train": {"epochs": 3, "batch_size": 128, "patience": 2, "learning_rate": 0.01},
    "gate": {"thresholds": {"income": {"roc_auc": 0.6}, "never_married": {"roc_auc": 0.6},
                            "relationship": {"macro_f1": 0.05}}},
}


def run_cmd(args: list[str], cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command with this environment's executables first on PATH (as `make` does)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def deep_update(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def make_project_copy(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the project files (tracked, or untracked but not ignored) into ``dest``, apply params overrides, and make it a fresh git
    repository with one commit (DVC's experiments and metrics diff need one). Stage outputs are not copied."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    for out in ("dvc.lock", "metrics", "plots", "dvclive", "reports", "models", "data/features"):
        path = dest / out
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    params_path = dest / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    deep_update(params, overrides or {})
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    run_cmd(["git", "init", "-q", "-b", "main"], dest)
    run_cmd(["git", "add", "-A"], dest)
    run_cmd([*git, "commit", "-qm", "test project"], dest)
    return dest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A temporary git+DVC copy of the project with the smoke configuration."""
    return make_project_copy(tmp_path / "project", SMOKE_OVERRIDES)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect ephemeral API (SQLite in a temporary PREFECT_HOME) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    with prefect_test_harness(server_startup_timeout=180):
        yield
