"""The data contract: a Great Expectations suite built from params.yaml and the reference profile.

Rules (each carries a plain-language ``rule`` so a failure reads
``data/incoming/b.csv: column 'age': values must be between 16 and 100 (3 rows, e.g. [7, 120, 130])``):

- row count within ``validate.min_rows`` .. ``validate.max_rows``;
- every input and label column present; an unknown extra column is a warning (a failure with
  ``validate.strict_columns``);
- at most ``validate.null_fraction[col]`` (default ``max_null_fraction``) missing values per column;
- numeric columns numeric, within ``validate.numeric_ranges`` or else the profile's range widened by
  ``validate.range_margin``; categorical and label columns text;
- labels in their task's value set; categories in the profile's set, up to ``max_unseen_category_fraction``;
- rows in duplicate groups at most ``max_duplicate_fraction``;
- any user expectations from ``validate.expectations`` (a YAML/JSON list of ``{type, kwargs}``, checked
  against Great Expectations' own expectation classes, never evaluated as code).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.params import Params

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

_NUMERIC_TYPES = ["int", "int8", "int16", "int32", "int64", "Int64", "float", "float32", "float64", "Float64",
                  "uint8", "uint16", "uint32", "uint64"]
_STRING_TYPES = ["str", "string", "StringDtype", "object"]


class ContractError(ValueError):
    """The contract itself is bad (a user expectation with an unknown type or bad arguments)."""


@dataclass
class CheckResult:
    expectation: str
    column: str | None
    rule: str
    success: bool
    severity: str = "critical"
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_fraction: float | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass
class ValidationReport:
    file: str
    rows: int
    success: bool
    checks: list[CheckResult]

    @property
    def failures(self) -> list[CheckResult]:
        """Failed critical checks: these fail the file."""
        return [c for c in self.checks if not c.success and c.severity == "critical"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity != "critical"]

    def to_dict(self) -> dict:
        return {"file": self.file, "rows": self.rows, "success": self.success, "failed": len(self.failures),
                "warnings": len(self.warnings), "checks": [asdict(c) for c in self.checks]}

    def messages(self, *, warnings: bool = False) -> list[str]:
        return [describe(self.file, c) for c in (self.warnings if warnings else self.failures)]


def describe(file: str, c: CheckResult) -> str:
    """One line: file, column, rule, and what was seen."""
    where = f"column {c.column!r}: " if c.column else ""
    if c.error:
        detail = f" (error: {c.error})"
    elif c.unexpected_count:
        share = f" = {c.unexpected_fraction:.1%}" if c.unexpected_fraction is not None else ""
        detail = f" ({c.unexpected_count} rows{share}, e.g. {c.unexpected_examples})"
    elif c.observed is not None:
        detail = f" (observed {c.observed})"
    else:
        detail = ""
    return f"{file}: {where}{c.rule}{detail}"


def known_columns(params: Params) -> list[str]:
    """Every column the project knows: inputs, labels, dropped columns and the CSV column list."""
    cols = params.features.input_columns + params.label_columns + params.features.drop
    return list(dict.fromkeys(cols + list(params.data.csv.columns or [])))


def allowed_labels(params: Params) -> dict[str, tuple[str, list[str]]]:
    """task -> (label column, allowed values), for tasks whose values are a closed set."""
    out = {}
    for name, task in params.tasks.items():
        allowed = task.classes or ((task.positive or []) + (task.negative or []) if task.negative else None)
        if allowed:
            out[name] = (task.column, list(allowed))
    return out


def numeric_range(column: str, params: Params, profile: dict | None) -> tuple[float, float] | None:
    """The configured range, else the profile's observed range widened by ``validate.range_margin``."""
    if column in params.validate_.numeric_ranges:
        return params.validate_.numeric_ranges[column]
    entry = (profile or {}).get("columns", {}).get(column)
    if not entry or entry.get("min") is None:
        return None
    low, high = entry["min"], entry["max"]
    pad = params.validate_.range_margin * (high - low)
    return low - pad, high + pad


def build_expectations(params: Params, profile: dict | None = None, columns: list[str] | None = None,
                       root: Path | None = None) -> list[Any]:
    """The expectations for a table with ``columns`` (all known columns when None).

    Column-level rules are left out for absent columns: the "column is required" rule reports those once,
    rather than every rule on them failing with an error.

    Args:
        params: the project parameters.
        profile: the reference profile (category sets, default ranges), or None.
        columns: the table's columns.
        root: where ``validate.expectations`` is resolved from.

    Raises:
        ContractError: a user expectation is malformed.
    """
    import great_expectations as gx

    E = gx.expectations
    v = params.validate_
    present = set(columns) if columns is not None else set(known_columns(params))
    out: list[Any] = []

    def add(expectation: Any, rule: str) -> None:
        expectation.meta = {**(expectation.meta or {}), "rule": rule}
        out.append(expectation)

    bounds = f"at least {v.min_rows}" + (f" and at most {v.max_rows}" if v.max_rows else "")
    add(E.ExpectTableRowCountToBeBetween(min_value=v.min_rows, max_value=v.max_rows), f"the table must have {bounds} rows")
    required = list(dict.fromkeys(params.features.input_columns + params.label_columns))
    for column in required:
        add(E.ExpectColumnToExist(column=column), "the column is required")
    known = known_columns(params)
    add(E.ExpectTableColumnsToMatchSet(column_set=known, exact_match=True,
                                       severity="critical" if v.strict_columns else "warning"),
        "only known columns may appear" + ("" if v.strict_columns else " (extra columns are ignored)"))
    for column in required:
        if column not in present:
            continue
        limit = v.null_fraction.get(column, v.max_null_fraction)
        if limit < 1:
            add(E.ExpectColumnValuesToNotBeNull(column=column, mostly=1 - limit),
                f"at most {limit:.0%} of values may be missing (NaN, inf or empty)")
    for column in params.features.numeric:
        if column not in present:
            continue
        add(E.ExpectColumnValuesToBeInTypeList(column=column, type_list=_NUMERIC_TYPES), "values must be numeric")
        bounds_ = numeric_range(column, params, profile)
        if bounds_:
            low, high = bounds_
            add(E.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high),
                f"values must be between {low:g} and {high:g}")
    for column in params.features.categorical + [t.column for t in params.features.text] + params.label_columns:
        if column in present:
            add(E.ExpectColumnValuesToBeInTypeList(column=column, type_list=_STRING_TYPES), "values must be text")
    for name, (column, allowed) in allowed_labels(params).items():
        if column in present:
            add(E.ExpectColumnValuesToBeInSet(column=column, value_set=allowed),
                f"label of task {name!r} must be one of {allowed}")
    if profile:
        tolerated = v.max_unseen_category_fraction
        for column in params.features.categorical:
            categories = sorted(profile["columns"][column].get("frequencies", {}))
            if column in present and categories:
                add(E.ExpectColumnValuesToBeInSet(column=column, value_set=categories, mostly=1 - tolerated),
                    f"at most {tolerated:.0%} of values may be categories unseen in the reference profile")
    dup_columns = [c for c in known if c in present]
    if dup_columns:
        add(E.ExpectCompoundColumnsToBeUnique(column_list=dup_columns, mostly=1 - v.max_duplicate_fraction),
            f"at most {v.max_duplicate_fraction:.0%} of rows may be duplicates (all copies counted)")
    if v.expectations is not None:
        out.extend(load_user_expectations((root or Path.cwd()) / v.expectations))
    return out


def _expectation_classes() -> dict[str, type]:
    """snake_case type name -> class, for every expectation Great Expectations ships."""
    import great_expectations as gx

    classes = {}
    for name in dir(gx.expectations):
        cls = getattr(gx.expectations, name)
        if isinstance(cls, type) and issubclass(cls, gx.expectations.Expectation) and name.startswith("Expect"):
            classes[re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()] = cls
    return classes


def load_user_expectations(path: Path) -> list[Any]:
    """Expectations from a YAML or JSON list of ``{type, kwargs, rule?, severity?}``.

    Args:
        path: the file (``.yaml``, ``.yml`` or ``.json``).

    Raises:
        ContractError: the file is missing or malformed, a type is not a Great Expectations expectation,
            or its arguments are invalid; the message names the file and the entry.
    """
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ContractError(f"{path}: user expectations file not found (validate.expectations)") from None
    try:
        entries = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot be parsed: {exc}") from None
    entries = entries or []
    if not isinstance(entries, list):
        raise ContractError(f"{path}: expected a list of {{type, kwargs}} entries")
    classes = _expectation_classes()
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ContractError(f"{where}: expected a mapping with `type` and `kwargs`")
        unknown = set(entry) - {"type", "kwargs", "rule", "severity"}
        if unknown:
            raise ContractError(f"{where}: unknown keys {sorted(unknown)}; allowed: type, kwargs, rule, severity")
        cls = classes.get(str(entry["type"]))
        if cls is None:
            close = [n for n in classes if str(entry["type"]).split("_")[-1] in n][:3]
            raise ContractError(f"{where}: unknown expectation type {entry['type']!r}"
                                + (f"; did you mean {close}?" if close else ""))
        kwargs = entry.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ContractError(f"{where}: `kwargs` must be a mapping")
        try:
            expectation = cls(**kwargs, severity=entry.get("severity", "critical"))
        except Exception as exc:  # pydantic validation of the expectation's own fields
            raise ContractError(f"{where} ({entry['type']}): invalid arguments: {exc}") from None
        expectation.meta = {"rule": entry.get("rule") or f"user expectation {entry['type']}", "user": True}
        out.append(expectation)
    return out


def validate_frames(frames: dict[str, pd.DataFrame], params: Params, *, profile: dict | None = None,
                    docs_dir: Path | None = None, root: Path | None = None) -> list[ValidationReport]:
    """Run the contract on each frame (keyed by file name) in one ephemeral Great Expectations context.

    Args:
        frames: file name -> table.
        params: the project parameters.
        profile: the reference profile, or None.
        docs_dir: when given, Great Expectations Data Docs (HTML) are (re)built there.
        root: where ``validate.expectations`` is resolved from.

    Raises:
        ContractError: a user expectation is malformed.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("tables")
    examples = params.validate_.unexpected_examples
    definitions = []
    for i, (file, frame) in enumerate(frames.items()):
        batch = source.add_dataframe_asset(f"table{i}").add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add(gx.ExpectationSuite(name=_name(file, i)))
        for expectation in build_expectations(params, profile, list(frame.columns), root):
            suite.add_expectation(expectation)
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=_name(file, i), data=batch, suite=suite)))
    actions = []
    if docs_dir is not None:
        docs_dir = Path(docs_dir).resolve()
        shutil.rmtree(docs_dir, ignore_errors=True)
        context.add_data_docs_site("mtl", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["mtl"]))
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": examples}
    reports = []
    # One checkpoint per frame: each gets its own batch parameters (the frame itself).
    for (file, frame), definition in zip(frames.items(), definitions, strict=True):
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"check-{definition.name}", validation_definitions=[definition], actions=actions,
            result_format=result_format))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        (result,) = outcome.run_results.values()
        reports.append(_report(file, frame, result, params))
    return reports


def validate_frame(frame: pd.DataFrame, params: Params, *, file: str, profile: dict | None = None,
                   docs_dir: Path | None = None, root: Path | None = None) -> ValidationReport:
    """Run the contract on one frame (see :func:`validate_frames`)."""
    return validate_frames({file: frame}, params, profile=profile, docs_dir=docs_dir, root=root)[0]


def _report(file: str, frame: pd.DataFrame, result: Any, params: Params) -> ValidationReport:
    examples = params.validate_.unexpected_examples
    known = set(known_columns(params))
    checks = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        rule = (cfg.meta or {}).get("rule", cfg.type)
        observed = _jsonable(res.get("observed_value"))
        if cfg.type == "expect_table_columns_to_match_set" and isinstance(observed, list):
            extra = [c for c in observed if c not in known]
            missing = [c for c in known if c not in observed]
            observed = {"extra": extra, "missing_optional": missing}
        error = None
        if r.exception_info and r.exception_info.get("raised_exception"):
            error = str(r.exception_info.get("exception_message"))[:300]
        pct = res.get("unexpected_percent")
        checks.append(CheckResult(
            expectation=cfg.type,
            column=cfg.kwargs.get("column"),
            rule=rule,
            success=bool(r.success),
            severity=str(getattr(cfg.severity, "value", cfg.severity) or "critical"),
            observed=observed,
            unexpected_count=res.get("unexpected_count"),
            unexpected_fraction=None if pct is None else round(float(pct) / 100, 6),
            unexpected_examples=[_jsonable(x) for x in (res.get("partial_unexpected_list") or [])[:examples]],
            error=error,
        ))
    success = all(c.success for c in checks if c.severity == "critical")
    return ValidationReport(file=file, rows=len(frame), success=success, checks=checks)


def _name(file: str, i: int) -> str:
    # Dots would become folders in the Data Docs tree.
    return f"{i}-" + re.sub(r"[^A-Za-z0-9_-]+", "_", Path(file).name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is pd.NA or value is None:
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value
