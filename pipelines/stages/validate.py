"""Stage validate: check the raw training and test files against the data contract.

    python -m pipelines.stages.validate        (dvc.yaml runs this)

Writes reports/validation/summary.json (every expectation: passed or not, observed value, a few unexpected
examples) and Great Expectations Data Docs (reports/validation/data_docs/index.html). Any failed expectation
prints a table of file, column and rule and exits 1, which stops `dvc repro` before anything is trained on
bad data. A file that cannot even be read (empty, corrupt, wrong delimiter...) fails the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from pipelines.contract import ValidationReport, validate_frames
from pipelines.io import DATA_DOCS_DIR, VALIDATION_SUMMARY, read_table, table_files
from pipelines.params import Params
from pipelines.profile import profile_for
from pipelines.stages._entry import StageError, console, stage_main


def data_files(params: Params, root: Path) -> list[Path]:
    """The training and test files, then each accepted batch (re-checked: the contract may have changed since)."""
    files = [params.data.train] + ([params.data.test] if params.data.test else [])
    if params.data.batches is not None:
        files += [p.relative_to(root) for p in table_files(root / params.data.batches)]
    return files


def failure_table(reports: list[ValidationReport], *, title: str = "Data validation failures") -> Table:
    """A console table of the failed (and warned) checks: file, column, rule, what was seen."""
    table = Table("file", "column", "rule", "severity", "observed / examples", title=title)
    for r in reports:
        for c in r.failures + r.warnings:
            seen = c.error or (f"{c.unexpected_count} rows, e.g. {c.unexpected_examples}" if c.unexpected_count
                               else c.observed)
            table.add_row(r.file, c.column or "-", c.rule, c.severity, str(seen))
    return table


def write_summary(reports: list[ValidationReport], out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"success": all(r.success for r in reports), "files": [r.to_dict() for r in reports]}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(params: Params, root: Path) -> list[ValidationReport]:
    profile = profile_for(params, root)
    frames = {str(path): read_table(root / path, params) for path in data_files(params, root)}
    reports = validate_frames(frames, params, profile=profile, docs_dir=root / DATA_DOCS_DIR, root=root)
    write_summary(reports, root / VALIDATION_SUMMARY)
    if any(r.failures or r.warnings for r in reports):
        console.print(failure_table(reports))
    failures = [m for r in reports for m in r.messages()]
    if failures:
        raise StageError("data validation failed:\n  " + "\n  ".join(failures)
                         + f"\n(report: {VALIDATION_SUMMARY}; Data Docs: {DATA_DOCS_DIR}/index.html)")
    console.print(f"validate: {sum(len(r.checks) for r in reports)} checks passed on "
                  f"{', '.join(f'{r.file} ({r.rows} rows)' for r in reports)}; Data Docs: {DATA_DOCS_DIR}/index.html")
    return reports


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
