"""Integration: the real `dvc repro` on a temporary git+DVC copy of the project (subsampled Adult)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cmd

pytestmark = pytest.mark.integration

DECLARED_OUTPUTS = [
    "reports/validation/summary.json",
    "data/features/train.safetensors",
    "data/features/val.safetensors",
    "data/features/test.safetensors",
    "data/features/preprocessor.skops",
    "data/features/meta.json",
    "models/candidate/model.json",
    "models/candidate/weights.safetensors",
    "models/candidate/preprocessor.skops",
    "metrics/train.json",
    "metrics/test.json",
    "reports/attention.json",
    "reports/predictions/test.parquet",
    "plots/attention.png",
    "plots/roc/income.json",
    "plots/confusion/relationship.json",
    "reports/gate.json",
]


def test_dvc_repro_runs_every_stage_then_is_a_no_op(project):
    first = run_cmd(["dvc", "repro"], project)
    for stage in ("validate", "preprocess", "train", "evaluate", "gate"):
        assert f"Running stage '{stage}'" in first.stdout
    for rel in DECLARED_OUTPUTS:
        assert (project / rel).exists(), f"missing declared output {rel}"
    metrics = json.loads((project / "metrics/test.json").read_text())
    assert set(metrics) == {"income", "never_married", "relationship"}
    assert 0.5 < metrics["income"]["roc_auc"] <= 1.0
    assert 0.0 <= metrics["relationship"]["macro_f1"] <= 1.0
    assert json.loads((project / "reports/gate.json").read_text())["passed"] is True

    mtimes = {rel: (project / rel).stat().st_mtime_ns for rel in DECLARED_OUTPUTS}
    second = run_cmd(["dvc", "repro"], project)
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout
    assert {rel: (project / rel).stat().st_mtime_ns for rel in DECLARED_OUTPUTS} == mtimes


def test_experiment_variant_is_compared_with_the_baseline(project):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    run_cmd(["dvc", "repro"], project)
    run_cmd(["git", "add", "-A"], project)
    run_cmd([*git, "commit", "-qm", "baseline"], project)

    variant = run_cmd(["dvc", "exp", "run", "-S", "model.architecture=shared_bottom"], project)
    assert "Running stage 'train'" in variant.stdout
    assert "Running stage 'validate'" not in variant.stdout  # unchanged deps: cached
    shown = json.loads(run_cmd(["dvc", "exp", "show", "--json"], project).stdout)
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    assert exps, "the variant is listed beside the baseline"
    diff = json.loads(run_cmd(["dvc", "metrics", "diff", "--json"], project).stdout)
    changed = diff["metrics/test.json"]
    assert any(key.startswith("income.") for key in changed)
    assert any(key.startswith("relationship.") for key in changed)


def test_failed_gate_stops_dvc_repro_with_a_clear_message(tmp_path):
    from tests.conftest import SMOKE_OVERRIDES, make_project_copy

    overrides = {**SMOKE_OVERRIDES, "gate": {"thresholds": {"income": {"roc_auc": 0.9999}}}}
    project = make_project_copy(tmp_path / "p", overrides)
    proc = run_cmd(["dvc", "repro"], project, check=False)
    assert proc.returncode != 0
    assert "gate failed: income.roc_auc >= 0.9999" in proc.stderr + proc.stdout
    report = json.loads((project / "reports/gate.json").read_text())
    assert report["passed"] is False
