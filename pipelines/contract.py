"""The data contract: a Great Expectations suite built from params.yaml, run on a pandas frame.

Each expectation carries a plain-language rule, so a failure reads
``data/adult/adult.data.gz: column 'age': values must be between 16 and 100 (3 rows, e.g. [7, 120, 130])``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from pipelines.params import Params

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass
class CheckResult:
    expectation: str
    column: str | None
    rule: str
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = field(default_factory=list)


@dataclass
class ValidationReport:
    file: str
    rows: int
    success: bool
    checks: list[CheckResult]

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    def to_dict(self) -> dict:
        return {"file": self.file, "rows": self.rows, "success": self.success,
                "failed": len(self.failures), "checks": [asdict(c) for c in self.checks]}

    def messages(self) -> list[str]:
        out = []
        for c in self.failures:
            where = f"column {c.column!r}: " if c.column else ""
            detail = ""
            if c.unexpected_count:
                detail = f" ({c.unexpected_count} rows, e.g. {c.unexpected_examples})"
            elif c.observed is not None:
                detail = f" (observed {c.observed})"
            out.append(f"{self.file}: {where}{c.rule}{detail}")
        return out


def build_expectations(params: Params) -> list[tuple[Any, str]]:
    """(expectation, rule in words) pairs for the raw table described by params.yaml."""
    import great_expectations as gx

    E = gx.expectations
    v = params.validate_
    out: list[tuple[Any, str]] = [
        (E.ExpectTableRowCountToBeBetween(min_value=v.min_rows), f"the table must have at least {v.min_rows} rows")
    ]
    required = params.features.input_columns + params.label_columns
    for column in dict.fromkeys(required):
        out.append((E.ExpectColumnToExist(column=column), "the column is required"))
    for column in dict.fromkeys(params.features.input_columns + params.label_columns):
        limit = v.null_fraction.get(column, v.max_null_fraction)
        if limit < 1:
            out.append((
                E.ExpectColumnValuesToNotBeNull(column=column, mostly=1 - limit),
                f"at most {limit:.0%} of values may be missing",
            ))
    for column in params.features.numeric:
        out.append((
            E.ExpectColumnValuesToBeInTypeList(column=column, type_list=_NUMERIC_TYPES),
            "values must be numeric",
        ))
    for column, (low, high) in v.numeric_ranges.items():
        out.append((
            E.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high),
            f"values must be between {low:g} and {high:g}",
        ))
    for name, task in params.tasks.items():
        allowed = task.classes or ((task.positive or []) + (task.negative or []) if task.negative else None)
        if allowed:
            out.append((
                E.ExpectColumnValuesToBeInSet(column=task.column, value_set=list(allowed)),
                f"label of task {name!r} must be one of {list(allowed)}",
            ))
    return out


_NUMERIC_TYPES = ["int", "int8", "int16", "int32", "int64", "Int64", "float", "float32", "float64", "Float64",
                  "uint8", "uint16", "uint32", "uint64"]


def validate_frame(frame: pd.DataFrame, params: Params, *, file: str) -> ValidationReport:
    """Run the contract on ``frame`` with an ephemeral Great Expectations context."""
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (context.data_sources.add_pandas("raw").add_dataframe_asset("table")
             .add_batch_definition_whole_dataframe("whole"))
    suite = context.suites.add(gx.ExpectationSuite(name="contract"))
    rules = {}
    for expectation, rule in build_expectations(params):
        suite.add_expectation(expectation)
        rules[_key(expectation.expectation_type, expectation.column if hasattr(expectation, "column") else None)] = rule
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="contract", data=batch, suite=suite))
    examples = params.validate_.unexpected_examples
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples},
    )
    checks = []
    for r in result.results:
        cfg = r.expectation_config
        column = cfg.kwargs.get("column")
        res = r.result or {}
        checks.append(CheckResult(
            expectation=cfg.type,
            column=column,
            rule=rules.get(_key(cfg.type, column), cfg.type),
            success=bool(r.success),
            observed=_jsonable(res.get("observed_value")),
            unexpected_count=res.get("unexpected_count"),
            unexpected_examples=[_jsonable(x) for x in (res.get("partial_unexpected_list") or [])[:examples]],
        ))
    return ValidationReport(file=file, rows=len(frame), success=bool(result.success), checks=checks)


def _key(expectation_type: str, column: str | None) -> str:
    return f"{expectation_type}:{column}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if value is pd.NA:
        return None
    return value
