"""Data versioning end to end, in a temporary git + DVC copy of the project, with the real `mtl`, `dvc` and git:
an accepted batch becomes a new data version (mtl data versions, git log, dvc status), `dvc push` then
`dvc pull` restores it byte for byte, and `dvc repro preprocess` trains on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.drift import psi
from pipelines.io import read_table
from pipelines.params import load_params
from tests.conftest import make_project_copy, run_cmd

pytestmark = pytest.mark.integration


def test_accepted_batch_is_a_new_data_version_that_round_trips_and_feeds_training(tmp_path: Path):
    root = make_project_copy(tmp_path / "project")
    params = load_params(root / "params.yaml")
    frame = read_table(root / params.data.train, params).dropna().drop_duplicates().sample(250, random_state=11)
    incoming = root / "data" / "incoming" / "week1.csv"
    incoming.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(incoming, index=False)
    payload = incoming.read_bytes()
    head = run_cmd(["git", "rev-parse", "HEAD"], root).stdout.strip()

    ingest = run_cmd(["mtl", "data", "ingest", "--root", "."], root)
    assert "accepted" in ingest.stdout

    versions = json.loads(run_cmd(["mtl", "data", "versions", "--json"], root).stdout)
    assert [v["version"] for v in versions] == [0, 1]
    batch = versions[1]
    assert batch["rows"] == 250 and batch["total_rows"] == versions[0]["rows"] + 250 and batch["present"]
    stored = root / batch["path"]
    assert stored.read_bytes() == payload, "the accepted batch is kept byte for byte"
    assert not incoming.exists()

    # git: one commit on top, adding the batch's .dvc file (with its rows in meta), at the reported revision.
    log = run_cmd(["git", "log", "--format=%h %s", f"{head}..HEAD"], root).stdout.splitlines()
    assert len(log) == 1 and log[0].startswith(batch["rev"]) and "accept batch week1.csv" in log[0]
    assert run_cmd(["git", "ls-files", f"{batch['path']}.dvc"], root).stdout.strip()
    assert not run_cmd(["git", "status", "--porcelain", "--", "data/batches"], root).stdout.strip()

    # DVC: the file is tracked and clean locally, not yet on the remote.
    status = run_cmd(["dvc", "status", f"{batch['path']}.dvc"], root).stdout
    assert "up to date" in status.lower()
    cloud = run_cmd(["dvc", "status", "--cloud", f"{batch['path']}.dvc"], root).stdout
    assert "new" in cloud and Path(batch["path"]).name in cloud

    # Round trip through the configured local remote (../.dvc-storage).
    run_cmd(["dvc", "push", f"{batch['path']}.dvc"], root)
    assert "in sync" in run_cmd(["dvc", "status", "--cloud", f"{batch['path']}.dvc"], root).stdout
    stored.unlink()
    shutil.rmtree(root / ".dvc" / "cache")
    missing = json.loads(run_cmd(["mtl", "data", "versions", "--json"], root).stdout)
    assert missing[1]["present"] is False
    run_cmd(["dvc", "pull", f"{batch['path']}.dvc"], root)
    assert stored.read_bytes() == payload
    assert json.loads(run_cmd(["mtl", "data", "versions", "--json"], root).stdout)[1]["present"] is True

    # The pipeline sees the new version: validate re-checks the batch, preprocess appends its rows.
    run_cmd(["dvc", "repro", "preprocess"], root, timeout=900)
    summary = json.loads((root / "reports" / "validation" / "summary.json").read_text())
    assert summary["success"] and batch["path"] in [f["file"] for f in summary["files"]]
    assert (root / "reports" / "validation" / "data_docs" / "index.html").is_file()
    meta = json.loads((root / "data" / "features" / "meta.json").read_text())
    assert meta["rows"]["train"] + meta["rows"]["val"] == versions[0]["rows"] + 250


def test_psi_is_zero_for_identical_and_large_for_disjoint_shares():
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert psi([0.9, 0.1], [0.1, 0.9]) > 1.0


def test_user_expectation_with_unknown_type_is_a_clear_error(tmp_path: Path):
    from pipelines.contract import ContractError, load_user_expectations

    path = tmp_path / "mine.yaml"
    path.write_text("- type: expect_column_values_to_be_betwen\n  kwargs: {column: age, min_value: 0}\n")
    with pytest.raises(ContractError, match=r"mine.yaml: entry 0: unknown expectation type"):
        load_user_expectations(path)
    path.write_text("- type: expect_column_values_to_be_between\n  kwargs: {colum: age}\n")
    with pytest.raises(ContractError, match=r"entry 0 \(expect_column_values_to_be_between\): invalid arguments"):
        load_user_expectations(path)
    path.write_text("- type: expect_column_values_to_be_between\n  kwargs: {column: age, min_value: 0}\n")
    (expectation,) = load_user_expectations(path)
    assert expectation.column == "age"


def test_parquet_batches_read_like_csv(tmp_path: Path):
    from tests.conftest import ROOT

    params = load_params(ROOT / "params.yaml")
    frame = read_table(ROOT / params.data.train, params).head(50)
    frame.to_parquet(tmp_path / "b.parquet")
    back = read_table(tmp_path / "b.parquet", params)
    pd.testing.assert_frame_equal(back, frame)
