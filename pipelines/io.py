"""Reading the raw tables named in params.yaml (and incoming batches), and the stage file layout.

Reading is defensive: a file that is not a usable table fails with a :class:`DataReadError` that names the
file, the column where there is one, and the rule that was broken (``empty file``, ``not UTF-8 text``,
``wrong delimiter``, ``values must be numeric``, ...), never with a pandas traceback. The file itself is only
ever read, never touched.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.params import DataConfig, Params


class DataReadError(ValueError):
    """A data file could not be read as a table.

    Attributes:
        file: the file, as given.
        rule: the rule it broke, in words (``"empty file (0 bytes)"``).
        column: the column concerned, if any.
        examples: a few offending values with their line numbers, if any.
    """

    def __init__(self, file: str | Path, rule: str, *, column: str | None = None, examples: list | None = None):
        self.file, self.rule, self.column, self.examples = str(file), rule, column, list(examples or [])
        where = f"column {column!r}: " if column else ""
        more = f" (e.g. {self.examples})" if self.examples else ""
        super().__init__(f"{self.file}: {where}{rule}{more}")


# Where each stage writes, relative to the project root; dvc.yaml declares the same paths.
VALIDATION_SUMMARY = Path("reports/validation/summary.json")
DATA_DOCS_DIR = Path("reports/validation/data_docs")
FEATURES_DIR = Path("data/features")
CANDIDATE_DIR = Path("models/candidate")
TRAIN_METRICS = Path("metrics/train.json")
TEST_METRICS = Path("metrics/test.json")
PREDICTIONS = Path("reports/predictions/test.parquet")
PLOTS_DIR = Path("plots")
GATE_REPORT = Path("reports/gate.json")
ATTENTION = Path("reports/attention.json")
DVCLIVE_DIR = Path("dvclive")
# Incoming batches (pipelines/datasets.py): dropped here, then accepted into data.batches or quarantined.
INCOMING_DIR = Path("data/incoming")
QUARANTINE_DIR = Path("data/quarantine")
DRIFT_DIR = Path("reports/drift")
BATCH_REPORTS_DIR = Path("reports/validation/batches")

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_DELIMITERS = (",", ";", "\t", "|")
# Signatures of common non-table files, so the error can say what the file looks like.
_BINARY_SIGNATURES = {b"PK\x03\x04": "a zip archive (xlsx?)", b"%PDF": "a PDF", b"\x89PNG": "a PNG image",
                      b"\xff\xd8\xff": "a JPEG image", b"\x7fELF": "an executable", b"SQLite format": "a SQLite db"}


def read_table(path: str | Path, params: Params) -> pd.DataFrame:
    """Read CSV (optionally gzip), TSV or Parquet; categorical and label columns as strings, numeric as numbers.

    With ``data.csv.header: false`` a first line that holds column names is recognised as a header (incoming
    batches usually carry one) and its names are used. Infinite numeric values are read as missing, so the
    contract's null-fraction rule counts them.

    Args:
        path: the file.
        params: the project parameters (``data.csv`` options, feature and label columns).

    Returns:
        The table, normalised (``data.strip_suffix`` applied).

    Raises:
        DataReadError: the file is missing, empty, header-only, corrupt, not UTF-8, binary, uses another
            delimiter, or has text in a numeric column; the message names the file, column and rule.
    """
    path = Path(path)
    if not path.is_file():
        raise DataReadError(path, "file not found")
    raw = path.read_bytes()
    if not raw:
        raise DataReadError(path, "empty file (0 bytes)")
    if raw.startswith(_PARQUET_MAGIC) or path.suffix == ".parquet":
        frame, line_of = _read_parquet(path, raw), None
    else:
        frame, line_of = _read_csv(path, raw, params)
    return normalise(_coerce_types(frame, path, params, line_of), params.data)


def _read_parquet(path: Path, raw: bytes) -> pd.DataFrame:
    if not (raw.startswith(_PARQUET_MAGIC) and raw.endswith(_PARQUET_MAGIC)):
        raise DataReadError(path, "not a Parquet file (missing the PAR1 markers: truncated or another format)")
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises many types for a damaged file; all mean the same to the user
        raise DataReadError(path, f"corrupt Parquet file: {type(exc).__name__}: {exc}") from None
    if frame.empty:
        raise DataReadError(path, "no data rows" if len(frame.columns) else "empty table (no columns, no rows)")
    return frame


def _decompress(path: Path, raw: bytes) -> bytes:
    if raw.startswith(_GZIP_MAGIC):
        try:
            return gzip.decompress(raw)
        except EOFError:
            raise DataReadError(path, "truncated gzip: the compressed stream ends early (incomplete copy?)") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise DataReadError(path, f"corrupt gzip: {exc}") from None
    if path.suffix == ".gz":
        raise DataReadError(path, "named .gz but not gzip-compressed (no gzip header)")
    return raw


def _check_text(path: Path, raw: bytes) -> bytes:
    """The bytes of a UTF-8 text file, without its byte-order mark; raises for binary or non-UTF-8 content.

    The bytes, not the decoded text, are returned and parsed: a str copy of a large file (and the UCS-4 buffer
    ``io.StringIO`` makes of it) cost several times the file's size in memory (docs/benchmarks.md).
    """
    head = raw[:8192]
    for magic, what in _BINARY_SIGNATURES.items():
        if head.startswith(magic):
            raise DataReadError(path, f"binary file, not a table: looks like {what}")
    if b"\x00" in head:
        raise DataReadError(path, f"binary file, not a table: NUL byte at offset {head.index(0)}")
    try:
        raw.decode("utf-8-sig")  # the check only; the text is dropped at once
        return raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataReadError(
            path, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {col} (re-save as UTF-8)"
        ) from None


def _split(line: str, sep: str, strip: bool) -> list[str]:
    fields = line.split(sep)
    return [f.strip() for f in fields] if strip else fields


def _content_lines(data: bytes, comment: str | None):
    """(line number, line) of each non-blank, non-comment line, lazily (reading stops where the caller does).

    Lines end at "\n" (a "\r" before it is dropped), as ``io.StringIO`` splits them; only the lines read are
    decoded, so sniffing the header of a large file copies nothing else.
    """
    start, number = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        number += 1
        line = data[start:end].decode("utf-8")
        start = end
        if line.strip() and not (comment and line.lstrip().startswith(comment)):
            yield number, line.rstrip("\r\n")


def _read_csv(path: Path, raw: bytes, params: Params) -> tuple[pd.DataFrame, Callable[[int], int]]:
    opts = params.data.csv
    data = _check_text(path, _decompress(path, raw))  # bytes: parsed as they are (see _check_text)
    sep = "\t" if path.name.endswith((".tsv", ".tsv.gz")) else opts.sep
    content = _content_lines(data, opts.comment)
    first_no, first = next(content, (0, ""))
    if not first_no:
        raise DataReadError(path, "empty file (no header, no rows)")
    fields = _split(first, sep, True)
    known = set(params.features.input_columns) | set(params.label_columns) | set(params.features.drop)
    if opts.columns:
        known |= set(opts.columns)
    expected = len(opts.columns) if (opts.columns and not opts.header) else max(2, len(known))
    if len(fields) == 1 and expected > 1:
        seen = {d: first.count(d) for d in _DELIMITERS if d != sep}
        guess = max(seen, key=seen.get)
        hint = f"; it looks {guess!r}-separated" if seen[guess] else ""
        raise DataReadError(path, f"wrong delimiter: line {first_no} has one field, no {sep!r} "
                                  f"(the configured data.csv.sep){hint}")
    # A header row: always with header: true; with header: false when most of its fields are column names.
    has_header = opts.header or sum(f in known for f in fields) >= max(1, len(fields) // 2)
    if has_header:
        names = fields
        if next(content, None) is None:
            raise DataReadError(path, "header row only, no data rows")
    else:
        names = list(opts.columns or [])
        if len(fields) != len(names):
            raise DataReadError(path, f"line {first_no} has {len(fields)} fields, expected {len(names)} "
                                      f"(data.csv.columns); wrong delimiter or a missing/extra column?")
    string_cols = params.features.categorical + [t.column for t in params.features.text] + params.label_columns
    try:
        frame = pd.read_csv(
            io.BytesIO(data), encoding="utf-8", sep=sep, header=None, names=names,
            skiprows=first_no if has_header else first_no - 1,
            na_values=opts.na_values, comment=opts.comment, skipinitialspace=opts.skipinitialspace,
            dtype={c: "string" for c in string_cols if c in names}, engine="c",
        )
    except pd.errors.ParserError as exc:
        raise DataReadError(path, f"malformed table: {exc}") from None
    except ValueError as exc:
        raise DataReadError(path, f"cannot be read as a table: {exc}") from None

    def line_of(row: int) -> int:
        # Only on the error path: rescan, since blank and comment lines do not make rows.
        rows = _content_lines(data, opts.comment)
        if has_header:
            next(rows)
        for i, (number, _) in enumerate(rows):
            if i == row:
                return number
        return -1

    return frame, line_of


def _coerce_types(frame: pd.DataFrame, path: Path, params: Params, line_of: Callable[[int], int] | None
                  ) -> pd.DataFrame:
    for column in params.features.numeric:
        if column not in frame.columns:
            continue  # a missing column is the contract's to report, with all the others
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
            bad = values.notna() & numbers.isna()
            if bad.any():
                rows = np.flatnonzero(bad.to_numpy())
                where = [f"line {line_of(i)}" if line_of else f"row {i + 1}" for i in rows[:5]]
                examples = [f"{w}: {values.iloc[i]!r}" for w, i in zip(where, rows[:5], strict=True)]
                raise DataReadError(path, f"values must be numeric ({len(rows)} rows are not)",
                                    column=column, examples=examples)
            frame[column] = numbers
        frame[column] = frame[column].astype("float64").replace([np.inf, -np.inf], np.nan)
    for column in params.features.categorical + [t.column for t in params.features.text] + params.label_columns:
        if column in frame.columns and not isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = frame[column].astype("string")
    return frame


def normalise(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    for column, suffix in data.strip_suffix.items():
        if column in frame.columns:
            frame[column] = frame[column].astype("string").str.removesuffix(suffix)
    return frame


def table_files(folder: Path) -> list[Path]:
    """The table files directly in ``folder``, sorted by name (batches are named by time, so in arrival order)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(TABLE_SUFFIXES))
