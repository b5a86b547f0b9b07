"""The bad-input catalogue: each bad batch dropped into data/incoming/ gets a clear error naming the file, the
column and the rule, a non-zero exit from `mtl data ingest`, and lands byte for byte in quarantine beside its
report, while no model or data version changes. Real Great Expectations, real git, real DVC (in a temporary
copy of the project); the batches are a few hundred rows of the bundled Adult data, altered one way each."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.datasets import list_versions, quarantine, validate_batch
from pipelines.io import read_table
from pipelines.params import load_params
from tests.conftest import make_project_copy, run_cmd

runner = CliRunner()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = make_project_copy(tmp_path_factory.mktemp("bad-inputs") / "project")
    # A stand-in production model, so "no model changed" is checked against something real on disk.
    model = root / "models" / "candidate" / "model.json"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text('{"architecture": "task_attention"}\n')
    return root


@pytest.fixture(scope="module")
def params(root):
    return load_params(root / "params.yaml")


@pytest.fixture(scope="module")
def base(root, params) -> pd.DataFrame:
    """300 clean, distinct rows of the training file, with a header row when written."""
    frame = read_table(root / params.data.train, params).dropna().drop_duplicates()
    return frame.sample(300, random_state=7).reset_index(drop=True)


def _state(root: Path) -> dict:
    """What must not change: git HEAD and tracked files, the batches folder, the models folder."""
    def digest(folder: Path) -> dict:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()} if folder.is_dir() else {}

    return {
        "head": run_cmd(["git", "rev-parse", "HEAD"], root).stdout.strip(),
        "tracked_changes": run_cmd(["git", "status", "--porcelain", "--untracked-files=no"], root).stdout,
        "batches": digest(root / "data" / "batches"),
        "models": digest(root / "models"),
        "versions": [(v.path, v.md5) for v in list_versions(load_params(root / "params.yaml"), root)],
    }


def _ingest_rejects(root: Path, name: str, payload: bytes, *expected: str) -> dict:
    """Drop ``payload`` as data/incoming/<name>, run `mtl data ingest`, check the rejection; return the report."""
    incoming = root / "data" / "incoming" / name
    incoming.parent.mkdir(parents=True, exist_ok=True)
    incoming.write_bytes(payload)
    before = _state(root)
    result = runner.invoke(app, ["data", "ingest", "--root", str(root)])
    assert result.exit_code == 1, result.output
    flat = " ".join(result.output.split())
    for text in (name, *expected):
        assert text in flat, f"{text!r} not in output:\n{result.output}"
    assert not incoming.exists(), "a rejected file must leave the inbox (for quarantine), not stay half-processed"
    (folder,) = [p for p in (root / "data" / "quarantine").glob(f"*-{name}") if p.is_dir()]
    assert (folder / name).read_bytes() == payload, "quarantined file must be byte for byte what arrived"
    report = json.loads((folder / "report.json").read_text())
    assert report["status"] == "rejected"
    assert report["sha256"] == hashlib.sha256(payload).hexdigest()
    assert all(text in " ".join(report["reasons"]) for text in expected), report["reasons"]
    assert _state(root) == before, "no model or data version may change on a rejected batch"
    return report


def _csv(frame: pd.DataFrame, **kwargs) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode()


def test_clean_batch_is_accepted_by_validate(root, base, tmp_path):
    # The control: the unaltered sample passes, so each rejection below is due to its one alteration.
    path = tmp_path / "clean.csv"
    path.write_bytes(_csv(base))
    result = runner.invoke(app, ["data", "validate", str(path), "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output


def test_missing_required_column(root, base):
    report = _ingest_rejects(root, "no_age.csv", _csv(base.drop(columns=["age"])),
                             "column 'age'", "the column is required")
    assert report["validation"]["failed"] >= 1


def test_extra_column_is_a_warning_unless_strict(root, base, params, tmp_path):
    frame = base.assign(favourite_colour="blue")
    path = tmp_path / "extra.csv"
    payload = _csv(frame)
    path.write_bytes(payload)
    result = runner.invoke(app, ["data", "validate", str(path), "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "favourite_colour" in result.output
    assert path.read_bytes() == payload  # validate never moves or changes a file
    strict = params.model_copy(deep=True)
    strict.validate_.strict_columns = True
    verdict = validate_batch(path, strict, root)
    assert not verdict.accepted
    assert any("only known columns may appear" in r and "favourite_colour" in r for r in verdict.reasons)
    folder = quarantine(verdict, root)
    assert (folder / "extra.csv").read_bytes() == payload


def test_text_in_numeric_column(root, base):
    frame = base.astype({"age": "object"})
    frame.loc[4, "age"] = "forty"
    # Line 6: header on line 1, row index 4 is the fifth data line.
    _ingest_rejects(root, "text_age.csv", _csv(frame), "column 'age'", "values must be numeric", "line 6: 'forty'")


def test_nan_and_inf_beyond_null_limit(root, base):
    frame = base.copy()
    frame.loc[:29, "hours-per-week"] = np.nan
    frame.loc[30:44, "hours-per-week"] = np.inf  # 45 of 300 = 15% > the 10% limit
    _ingest_rejects(root, "nan_inf.csv", _csv(frame), "column 'hours-per-week'",
                    "at most 10% of values may be missing")


def test_label_outside_its_set(root, base):
    frame = base.copy()
    frame.loc[:2, "income"] = "maybe"
    _ingest_rejects(root, "bad_label.csv", _csv(frame), "column 'income'", "label of task 'income' must be one of",
                    "maybe")


def test_all_null_column(root, base):
    frame = base.copy()
    frame["occupation"] = pd.NA
    report = _ingest_rejects(root, "null_occupation.csv", _csv(frame), "column 'occupation'",
                             "at most 10% of values may be missing")
    (check,) = [c for c in report["validation"]["checks"]
                if c["column"] == "occupation" and c["expectation"] == "expect_column_values_to_not_be_null"]
    assert check["unexpected_fraction"] == 1.0


def test_empty_file(root):
    _ingest_rejects(root, "empty.csv", b"", "empty file (0 bytes)")


def test_header_only_file(root, base):
    _ingest_rejects(root, "header_only.csv", _csv(base.iloc[:0]), "header row only, no data rows")


def test_truncated_gzip(root, base):
    whole = gzip.compress(_csv(base))
    _ingest_rejects(root, "truncated.csv.gz", whole[: len(whole) // 2], "truncated gzip")


def test_corrupt_gzip(root, base):
    whole = bytearray(gzip.compress(_csv(base)))
    whole[20:40] = b"\xff" * 20
    _ingest_rejects(root, "corrupt.csv.gz", bytes(whole), "corrupt gzip")


def test_non_utf8_bytes(root, base):
    frame = base.copy()
    frame.loc[9, "native-country"] = "Espa\u00f1a"
    payload = frame.to_csv(index=False).encode("latin-1")
    _ingest_rejects(root, "latin1.csv", payload, "not UTF-8 text", "byte 0xf1 at line 11")


def test_wrong_delimiter(root, base):
    _ingest_rejects(root, "semicolons.csv", _csv(base, sep=";"), "wrong delimiter", "it looks ';'-separated")


def test_duplicate_rows_above_limit(root, base):
    frame = pd.concat([base.iloc[:270], base.iloc[:30]], ignore_index=True)  # 60 of 300 rows in duplicate pairs
    _ingest_rejects(root, "duplicates.csv", _csv(frame), "at most 1% of rows may be duplicates")


def test_unseen_categories_above_limit(root, base):
    frame = base.copy()
    frame.loc[:29, "workclass"] = "Space-agency"  # 10% > 1% tolerated
    _ingest_rejects(root, "unseen.csv", _csv(frame), "column 'workclass'",
                    "categories unseen in the reference profile", "Space-agency")


def test_numeric_value_far_outside_range(root, base):
    frame = base.copy()
    frame.loc[0, "age"] = 5000
    _ingest_rejects(root, "old.csv", _csv(frame), "column 'age'", "values must be between 16 and 100", "5000")


def test_binary_file_that_is_not_a_table(root):
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    _ingest_rejects(root, "photo.csv", payload, "binary file, not a table", "PNG")


def test_binary_with_nul_bytes(root):
    payload = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    _ingest_rejects(root, "noise.parquet", payload, "not a Parquet file")
    _ingest_rejects(root, "noise.bin", payload, "binary file, not a table")


def test_label_distribution_drift(root, base, params):
    rich = read_table(root / params.data.train, params).dropna().drop_duplicates()
    rich = rich[rich["income"] == ">50K"].sample(300, random_state=3)  # ~24% in the reference, 100% here
    report = _ingest_rejects(root, "all_rich.csv", _csv(rich), "column 'income'", "label distribution drifted",
                             "PSI")
    income = next(c for c in report["drift"]["columns"] if c["column"] == "income")
    assert income["statistic"] == "psi" and income["drifted"] and income["value"] > params.drift.label_psi_threshold
    assert report["validation"]["success"], "the schema matches: only drift rejects this batch"
    assert "income" in report["drift"]["drifted_labels"]
