"""Prefect flows. The training pipeline reproduces the DVC stages one by one, so the code that runs is the
code `dvc repro` runs and dvc.lock stays true; each stage is one Prefect task with its output in the logs.

    mtl run                     (ephemeral Prefect API unless PREFECT_API_URL is set)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

STAGES = ("validate", "preprocess", "train", "evaluate", "gate")


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero; the message carries the tail of its output."""


def _dvc() -> list[str]:
    # The dvc of this interpreter's environment, whatever PATH says.
    return [sys.executable, "-m", "dvc"]


@task(name="dvc-stage", task_run_name="{stage}")
def reproduce_stage(stage: str, root: str) -> str:
    """`dvc repro --single-item <stage>`: runs the stage if its deps or params changed, else nothing."""
    logger = get_run_logger()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        [*_dvc(), "repro", "--single-item", stage], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line and "\r" not in line:  # progress-bar redraws are noise in a log
            logger.info(line)
        lines.append(line)
    if proc.wait() != 0:
        tail = "\n".join(lines[-25:])
        raise StageFailed(f"stage {stage!r} failed (exit {proc.returncode}):\n{tail}")
    return "\n".join(lines)


@flow(name="training-pipeline", log_prints=True)
def training_pipeline(root: str = ".") -> dict[str, str]:
    """validate -> preprocess -> train -> evaluate -> gate, each as a DVC stage in its own task."""
    root = str(Path(root).resolve())
    outputs = {}
    for stage in STAGES:
        outputs[stage] = reproduce_stage(stage, root)
    gate_path = Path(root) / "reports" / "gate.json"
    if gate_path.is_file():
        create_markdown_artifact(
            key="gate-report", markdown=f"## Gate report\n\n```json\n{gate_path.read_text()}\n```",
            description="Deployment gate outcome of this run",
        )
    return outputs
