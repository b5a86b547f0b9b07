"""`mtl predict` on a registered bundle: the contract check first, rejected rows reported in place, CSV and
Parquet in and out, a chosen version."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mtl_core.bundle import ModelBundle
from pipelines.cli import app
from pipelines.params import load_params
from pipelines.predict import PredictInputError, predict_file
from pipelines.registry import Registry
from tests.bundle_factory import ROOT, adult_rows, make_bundle


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project root with params.yaml and a registry holding v1 (production) and v2."""
    root = tmp_path_factory.mktemp("predict")
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    registry = Registry(root / "registry")
    registry.promote(registry.register(make_bundle(root / "a", seed=1), {}))
    registry.register(make_bundle(root / "b", seed=2), {})
    return root


@pytest.fixture
def rows() -> pd.DataFrame:
    frame = adult_rows(30)
    return frame.drop(columns=["income", "marital-status", "relationship"])


def test_scores_every_row_and_matches_the_bundle(project, rows, tmp_path):
    params = load_params(project / "params.yaml")
    rows.to_parquet(tmp_path / "in.parquet")
    summary = predict_file(tmp_path / "in.parquet", tmp_path / "out.csv", params, project)
    assert (summary.version, summary.rows, summary.scored, summary.rejected) == (1, 30, 30, 0)
    got = pd.read_csv(tmp_path / "out.csv")
    expected = ModelBundle.load(Registry(project / "registry").bundle_dir(1)).predict_frame(rows)
    assert got["row"].tolist() == list(range(30))
    pd.testing.assert_series_equal(got["income_proba"], expected["income_proba"].astype(float), atol=1e-6,
                                   check_names=False)
    assert got["relationship_pred"].tolist() == expected["relationship_pred"].tolist()


def test_rows_that_cannot_be_scored_are_reported_in_place_not_dropped(project, rows, tmp_path):
    params = load_params(project / "params.yaml")
    text = rows.astype({"age": "object", "hours-per-week": "object"})
    text.loc[3, "age"] = "forty"
    text.loc[7, "hours-per-week"] = "lots"
    text.loc[9, "age"] = None  # missing is imputed, as in training: still scored
    text.to_csv(tmp_path / "in.csv", index=False)
    summary = predict_file(tmp_path / "in.csv", tmp_path / "out.parquet", params, project)
    assert (summary.rows, summary.scored, summary.rejected) == (30, 28, 2)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 30
    bad = out[out["error"].notna()]
    assert bad["row"].tolist() == [3, 7]
    assert "column 'age': value 'forty' is not numeric" in bad["error"].iloc[0]
    assert bad["income_proba"].isna().all() and bad["relationship_pred"].isna().all()
    assert out.loc[9, "income_proba"] > 0
    assert any("row 3" in p and str(tmp_path / "in.csv") in p for p in summary.problems)


def test_missing_columns_refuse_the_whole_file_naming_them(project, rows, tmp_path):
    params = load_params(project / "params.yaml")
    rows.drop(columns=["age", "sex"]).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(PredictInputError, match=r"missing required input column\(s\) \['age', 'sex'\]"):
        predict_file(tmp_path / "in.csv", tmp_path / "out.csv", params, project)
    assert not (tmp_path / "out.csv").exists()


def test_cli_predicts_with_a_chosen_version_and_strict_exit(project, rows, tmp_path):
    rows.to_csv(tmp_path / "in.csv", index=False)
    runner = CliRunner()
    ok = runner.invoke(app, ["predict", "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"),
                             "--model", "2", "--root", str(project)])
    assert ok.exit_code == 0 and "model v2: 30/30 rows scored" in ok.output
    bad = rows.astype({"age": "object"})
    bad.loc[0, "age"] = "x"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    strict = runner.invoke(app, ["predict", "-i", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "o.csv"),
                                 "--strict", "--root", str(project)])
    assert strict.exit_code == 1 and "1 row(s) could not be scored" in strict.output
    unknown = runner.invoke(app, ["predict", "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
                                  "--model", "9", "--root", str(project)])
    assert unknown.exit_code == 1 and "no version 9" in unknown.output
