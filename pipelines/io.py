"""Reading the raw tables named in params.yaml, and the stage file layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.params import DataConfig, Params


class DataReadError(ValueError):
    """A data file could not be read as a table (the message names the file and why)."""


# Where each stage writes, relative to the project root; dvc.yaml declares the same paths.
VALIDATION_SUMMARY = Path("reports/validation/summary.json")
FEATURES_DIR = Path("data/features")
CANDIDATE_DIR = Path("models/candidate")
TRAIN_METRICS = Path("metrics/train.json")
TEST_METRICS = Path("metrics/test.json")
PREDICTIONS = Path("reports/predictions/test.parquet")
PLOTS_DIR = Path("plots")
GATE_REPORT = Path("reports/gate.json")
ATTENTION = Path("reports/attention.json")
DVCLIVE_DIR = Path("dvclive")


def read_table(path: str | Path, params: Params) -> pd.DataFrame:
    """Read CSV (optionally gzip), TSV or Parquet; categorical and label columns as strings.

    Raises:
        DataReadError: the file is missing, empty, corrupt or not a table.
    """
    path = Path(path)
    data = params.data
    if not path.is_file():
        raise DataReadError(f"{path}: file not found")
    string_cols = params.features.categorical + [t.column for t in params.features.text] + params.label_columns
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            opts = data.csv
            frame = pd.read_csv(
                path,
                sep="\t" if path.name.endswith((".tsv", ".tsv.gz")) else opts.sep,
                header=0 if opts.header else None,
                names=None if opts.header else opts.columns,
                na_values=opts.na_values,
                comment=opts.comment,
                skipinitialspace=opts.skipinitialspace,
                dtype={c: "string" for c in string_cols},
                encoding="utf-8",
                engine="c",
            )
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError,
            ValueError) as exc:
        raise DataReadError(f"{path}: cannot be read as a table: {type(exc).__name__}: {exc}") from None
    return normalise(frame, data)


def normalise(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    for column, suffix in data.strip_suffix.items():
        if column in frame.columns:
            frame[column] = frame[column].astype("string").str.removesuffix(suffix)
    return frame

