"""`mtl predict`: score a CSV or Parquet file with the production model (or a given registry version).

The input is checked against the model's side of the data contract first: every input column the model was
trained on must be present (else the whole file is refused, naming the columns), and numeric columns must hold
numbers. A row that cannot be scored is kept in the output with its ``error`` (file, column, rule and value)
and empty predictions; it is never dropped silently. Output columns: ``row`` (0-based position in the input),
the prediction columns of ``mtl_core.bundle.prediction_columns``, and ``error`` (empty when scored).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtl_core.bundle import ModelBundle
from pipelines.io import DataReadError, read_table
from pipelines.params import Params
from pipelines.registry import open_registry

MAX_REPORTED = 20  # problems listed on the console; all of them are in the output's `error` column


class PredictInputError(ValueError):
    """The input file cannot be scored at all (unreadable, or required columns missing)."""


@dataclass
class PredictSummary:
    input: str
    output: str
    version: int | None
    rows: int
    scored: int
    rejected: int
    problems: list[str] = field(default_factory=list)  # the first MAX_REPORTED row problems


def _first_data_line(path: Path, comment: str | None) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip() and not (comment and line.startswith(comment)):
                return line
    return ""


def read_input(path: str | Path, params: Params, required: list[str]) -> pd.DataFrame:
    """Parquet, or CSV/TSV (optionally gzip). A CSV whose first line names the required columns is read with
    that header; otherwise it is read in the project's own format (params.yaml ``data.csv``, e.g. the
    header-less Adult files) by ``pipelines.io.read_table``, which refuses the whole file for text in a numeric
    column (naming the file, column and lines) rather than reporting it per row.

    Raises:
        PredictInputError: the file is missing or cannot be read as a table.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictInputError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        opts = params.data.csv
        sep = "\t" if path.name.endswith((".tsv", ".tsv.gz")) else opts.sep
        header = [c.strip() for c in _first_data_line(path, opts.comment).rstrip("\r\n").split(sep)]
        if set(required) & set(header):  # a header row: read it as such, so missing columns get named
            strings = params.features.categorical + [t.column for t in params.features.text]
            return pd.read_csv(path, sep=sep, na_values=opts.na_values, comment=opts.comment,
                               skipinitialspace=opts.skipinitialspace, encoding="utf-8",
                               dtype={c: "string" for c in strings if c in header})
        return read_table(path, params)
    except DataReadError as exc:
        raise PredictInputError(str(exc)) from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise PredictInputError(f"{path}: cannot be read as a table: {type(exc).__name__}: {exc}") from None


def check_rows(frame: pd.DataFrame, bundle: ModelBundle, file: str) -> np.ndarray:
    """Per row, the reason it cannot be scored ("" when it can).

    Raises:
        PredictInputError: required input columns are missing (names the file and the columns).
    """
    missing = [c for c in bundle.input_columns if c not in frame.columns]
    if missing:
        raise PredictInputError(f"{file}: missing required input column(s) {missing} "
                                f"(the model needs {bundle.input_columns})")
    errors = np.full(len(frame), "", dtype=object)
    for column in bundle.schema.numeric:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            continue  # already numbers: missing values are imputed like in training
        text = values.astype("string").str.strip()
        coerced = pd.to_numeric(text, errors="coerce")
        bad = (coerced.isna() & text.notna() & (text != "")).to_numpy(dtype=bool, na_value=False)
        for i in np.flatnonzero(bad):
            message = f"column {column!r}: value {text.iloc[i]!r} is not numeric"
            errors[i] = message if not errors[i] else f"{errors[i]}; {message}"
    return errors


def score_frame(bundle: ModelBundle, frame: pd.DataFrame, file: str = "<frame>") -> pd.DataFrame:
    """Check then score every row; rejected rows keep their place with empty predictions and an ``error``."""
    errors = check_rows(frame, bundle, file)
    ok = errors == ""
    scored = bundle.predict_frame(frame.loc[ok] if not ok.all() else frame)
    if not ok.all():
        # Rejected rows keep their place; integer class columns become nullable so they stay integers.
        ints = [c for c in scored.columns if pd.api.types.is_integer_dtype(scored[c])]
        scored = scored.astype({c: "Int64" for c in ints}).reindex(frame.index)
    out = scored
    out.insert(0, "row", np.arange(len(frame), dtype=np.int64))
    out["error"] = pd.Series(np.where(ok, None, errors), index=frame.index, dtype=object)
    return out.reset_index(drop=True)


def write_output(frame: pd.DataFrame, path: str | Path) -> None:
    """Parquet for ``.parquet``, CSV (gzip for ``.gz``) otherwise; written aside, then renamed, so a crash
    never leaves a half-written result under the requested name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False, compression="gzip" if path.name.endswith(".gz") else None)
    tmp.replace(path)


def predict_file(input_path: str | Path, output_path: str | Path, params: Params, root: Path,
                 version: int | None = None) -> PredictSummary:
    """Score ``input_path`` with registry ``version`` (default: production) and write ``output_path``.

    Raises:
        PredictInputError: unreadable input or missing required columns.
        pipelines.registry.RegistryError: no production model, or no such version.
        mtl_core.bundle.BundleError: the registered bundle fails its safety checks.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if input_path.resolve() == output_path.resolve():
        raise PredictInputError(f"{output_path}: refusing to overwrite the input file")
    registry = open_registry(params, root)
    chosen = version if version is not None else registry.production()
    bundle = ModelBundle.load(registry.bundle_dir(chosen))
    frame = read_input(input_path, params, bundle.input_columns)
    result = score_frame(bundle, frame, str(input_path))
    write_output(result, output_path)
    rejected = result["error"].notna()
    first = result.loc[rejected, ["row", "error"]].head(MAX_REPORTED)
    return PredictSummary(str(input_path), str(output_path), chosen, len(result), int((~rejected).sum()),
                          int(rejected.sum()), [f"{input_path} row {r}: {e}" for r, e in first.itertuples(index=False)])
