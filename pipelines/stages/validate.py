"""Stage validate: check the raw training and test files against the data contract.

    python -m pipelines.stages.validate        (dvc.yaml runs this)

Writes reports/validation/summary.json; any failed expectation prints the file, column and rule and
exits 1, which stops `dvc repro` before anything is trained on bad data.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from pipelines.contract import ValidationReport, validate_frame
from pipelines.io import VALIDATION_SUMMARY, read_table
from pipelines.params import Params
from pipelines.stages._entry import StageError, console, stage_main


def data_files(params: Params) -> list[Path]:
    return [params.data.train] + ([params.data.test] if params.data.test else [])


def run(params: Params, root: Path) -> list[ValidationReport]:
    reports = []
    for path in data_files(params):
        frame = read_table(root / path, params)
        reports.append(validate_frame(frame, params, file=str(path)))
    out = root / VALIDATION_SUMMARY
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"success": all(r.success for r in reports), "files": [r.to_dict() for r in reports]}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    failures = [m for r in reports for m in r.messages()]
    if failures:
        table = Table("file", "column", "rule", "observed / examples", title="Data validation failures")
        for r in reports:
            for c in r.failures:
                seen = c.unexpected_examples if c.unexpected_count else c.observed
                table.add_row(r.file, c.column or "-", c.rule, str(seen))
        console.print(table)
        raise StageError("data validation failed:\n  " + "\n  ".join(failures) + f"\n(report: {VALIDATION_SUMMARY})")
    console.print(f"validate: {sum(len(r.checks) for r in reports)} checks passed on "
                  f"{', '.join(f'{r.file} ({r.rows} rows)' for r in reports)}")
    return reports


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
