"""Integration: the real `dvc repro` in a temporary project copy, then `mtl promote`, the gate refusing a worse
configuration against the champion, `mtl rollback`, `mtl predict` against the evaluate stage's predictions, and
`dvc plots show` rendering every declared plot.

One `dvc repro` for the module; the worse configuration re-runs the same stage functions in this process, and
the `mtl` commands run in-process through typer's CliRunner (the real command code, without paying a torch import
per call), so the file stays well inside its time budget on busy CI machines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from tests.conftest import SMOKE_OVERRIDES, deep_update, make_project_copy, run_cmd
from tests.test_registry import tree_digest

pytestmark = pytest.mark.integration

# Thresholds low enough that a smoke model passes them: the champion rule is what must stop a worse model.
OVERRIDES = deep_update(json.loads(json.dumps(SMOKE_OVERRIDES)), {"gate": {"thresholds": {
    "income": {"roc_auc": 0.3}, "never_married": {"roc_auc": 0.3}, "relationship": {"macro_f1": 0.0}}}})


def mtl(project: Path, *args: str, code: int = 0):
    """Run an `mtl` command in-process with ``--root project``; check its exit code."""
    result = CliRunner().invoke(app, [*args, "--root", str(project)])
    assert result.exit_code == code, f"mtl {' '.join(args)}: exit {result.exit_code}\n{result.output}"
    return result


@pytest.fixture(scope="module")
def promoted(tmp_path_factory) -> Path:
    project = make_project_copy(tmp_path_factory.mktemp("promoted") / "p", OVERRIDES)
    run_cmd(["dvc", "repro"], project)
    assert "v1 is now production" in mtl(project, "promote").stdout
    return project


@pytest.fixture(scope="module")
def worse(promoted, tmp_path_factory) -> tuple[Path, object]:
    """The promoted project re-trained with a configuration that cannot learn (the same stage functions that
    dvc.yaml runs): its gate must fail on the champion rule alone."""
    from pipelines.params import load_params
    from pipelines.stages import evaluate, gate, train
    from pipelines.stages.gate import GateFailed

    project = Path(shutil.copytree(promoted, tmp_path_factory.mktemp("worse") / "p", symlinks=True))
    params = yaml.safe_load((project / "params.yaml").read_text())
    deep_update(params, {"train": {"epochs": 1, "learning_rate": 1e-7, "seed": 7}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = tree_digest(project / "registry")
    loaded = load_params(project / "params.yaml")
    train.run(loaded, project)
    evaluate.run(loaded, project)
    with pytest.raises(GateFailed) as failed:
        gate.run(loaded, project)
    return project, (str(failed.value), before)


def registry_state(project: Path) -> dict:
    return json.loads((project / "registry/production.json").read_text())


def test_passing_gate_promotes_version_1_with_its_lineage(promoted):
    assert registry_state(promoted)["version"] == 1
    shown = json.loads(mtl(promoted, "registry", "show", "1").stdout)
    assert shown["production"] is True and shown["version"] == 1
    head = run_cmd(["git", "rev-parse", "HEAD"], promoted).stdout.strip()
    assert shown["git_revision"].startswith(head)
    lock = yaml.safe_load((promoted / "dvc.lock").read_text())
    features = next(o for o in lock["stages"]["preprocess"]["outs"] if o["path"] == "data/features")
    assert shown["data_version"]["dvc_lock"]["data/features"] == features["md5"]
    assert set(shown["data_version"]["files"]) == {"data/adult/adult.data.gz", "data/adult/adult.test.gz"}
    assert shown["metrics"] == json.loads((promoted / "metrics/test.json").read_text())
    assert shown["gate"]["passed"] is True and shown["gate"]["champion"] is None
    assert shown["params"]["train"]["epochs"] == OVERRIDES["train"]["epochs"]
    assert "production" in mtl(promoted, "registry", "list").stdout
    assert "already production (v1)" in mtl(promoted, "promote").stdout


def test_a_worse_configuration_is_refused_and_production_is_unchanged(worse):
    project, (message, before) = worse
    assert message.startswith("gate failed: ") and "champion" in message
    report = json.loads((project / "reports/gate.json").read_text())
    assert report["passed"] is False and report["champion"] == 1
    failed = [r for r in report["rules"] if not r["passed"]]
    assert failed and all(r["kind"] == "champion" for r in failed), failed
    assert all(r["passed"] for r in report["rules"] if r["kind"] in ("threshold", "data"))
    refused = mtl(project, "promote", code=1)
    assert "production is unchanged" in refused.output
    assert tree_digest(project / "registry") == before


def test_rollback_restores_the_previous_production_model(worse, tmp_path):
    from mtl_core.bundle import bundle_fingerprint
    from pipelines.registry import Registry

    source, _ = worse
    project = Path(shutil.copytree(source, tmp_path / "p", symlinks=True))
    registry = Registry(project / "registry")
    v1 = bundle_fingerprint(registry.bundle_dir(1))
    registry.promote(registry.register(project / "models/candidate", {"note": "forced, bypassing the gate"}))
    assert registry.production() == 2
    assert "v2 -> v1" in mtl(project, "rollback").stdout
    assert registry.production() == 1 and bundle_fingerprint(registry.bundle_dir()) == v1
    assert "nothing to roll back to" in mtl(project, "rollback", code=1).output


def test_mtl_predict_matches_the_evaluate_stage_on_the_same_rows(promoted, tmp_path):
    from pipelines.params import load_params
    from pipelines.stages.preprocess import split_frames

    rows = split_frames(load_params(promoted / "params.yaml"), promoted)["test"]
    expected = pd.read_parquet(promoted / "reports/predictions/test.parquet")
    for name in ("rows.parquet", "rows.csv"):
        source = tmp_path / name
        rows.to_parquet(source) if name.endswith(".parquet") else rows.to_csv(source, index=False)
        out = tmp_path / f"scored-{name}"
        result = mtl(promoted, "predict", "--input", str(source), "--output", str(out))
        assert f"{len(rows)}/{len(rows)} rows scored" in result.stdout
        got = pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out)
        assert got["row"].tolist() == list(range(len(rows))) and got["error"].isna().all()
        for column in expected.columns:
            if expected[column].dtype.kind == "f":
                np.testing.assert_allclose(got[column].to_numpy(float), expected[column], atol=1e-6,
                                           err_msg=column)
            else:
                assert got[column].astype(str).tolist() == expected[column].astype(str).tolist(), column


def test_dvc_plots_show_renders_every_declared_plot(promoted):
    shown = json.loads(run_cmd(["dvc", "plots", "show", "--json"], promoted).stdout)
    # The CLINC150 example's own dvc.yaml declares plots too; it has not been run in this copy.
    errors = [e for e in shown.get("errors") or [] if not str(e.get("source", "")).startswith("examples/")]
    assert not errors, errors
    data = shown["data"]
    expected = [f"plots/{kind}/{task}.json" for kind in ("roc", "precision_recall", "calibration")
                for task in ("income", "never_married")]
    expected += [f"plots/confusion/{task}.json" for task in ("income", "never_married", "relationship")]
    expected += ["plots/attention.png", "dvclive/plots/metrics/val/score.tsv",
                 "dvclive/plots/metrics/train/loss/income.tsv"]
    for plot_id in expected:
        assert plot_id in data and data[plot_id], f"{plot_id} not rendered"
    roc = json.dumps(data["plots/roc/income.json"][0]["content"])
    assert '"field": "fpr"' in roc and '"field": "tpr"' in roc
    confusion = json.dumps(data["plots/confusion/relationship.json"][0]["content"])
    assert '"rect"' in confusion  # the confusion template draws a heatmap, not a line
    assert data["plots/attention.png"][0]["type"] == "image"
    assert not any(k.startswith("dvc.yaml::") for k in data)  # each plot once, not twice
