"""Validation speed: the demo contract on 1,000,000 synthetic rows with Great Expectations, against a
hand-written pandas check of the same rules in the same run, and the time for the demo data.

    .venv/bin/python bench/validation.py [--rows 1000000]

Synthetic rows are Adult rows drawn with replacement, with fnlwgt redrawn so rows are distinct (as real new
data would be). Prints a table; copy it under "Validation" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from pipelines.contract import allowed_labels, known_columns, numeric_range, validate_frame, validate_frames  # noqa: E402
from pipelines.io import read_table  # noqa: E402
from pipelines.params import load_params  # noqa: E402
from pipelines.profile import load_profile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pandas_contract(frame: pd.DataFrame, params, profile) -> dict[str, bool]:
    """The same rules as pipelines/contract.py (and contracts/adult.expectations.yaml), by hand in pandas."""
    v = params.validate_
    out = {"rows": len(frame) >= v.min_rows and (v.max_rows is None or len(frame) <= v.max_rows)}
    required = list(dict.fromkeys(params.features.input_columns + params.label_columns))
    for c in required:
        out[f"exists:{c}"] = c in frame.columns
    out["known_columns"] = set(frame.columns) <= set(known_columns(params))
    for c in required:
        out[f"nulls:{c}"] = frame[c].isna().mean() <= v.null_fraction.get(c, v.max_null_fraction)
    for c in params.features.numeric:
        out[f"numeric:{c}"] = pd.api.types.is_numeric_dtype(frame[c])
        low, high = numeric_range(c, params, profile)
        values = frame[c].dropna()
        out[f"range:{c}"] = bool(((values >= low) & (values <= high)).all())
    for c in params.features.categorical + params.label_columns:
        out[f"text:{c}"] = pd.api.types.is_string_dtype(frame[c])
    for _, (c, allowed) in allowed_labels(params).items():
        out[f"labels:{c}"] = bool(frame[c].dropna().isin(allowed).all())
    for c in params.features.categorical:
        values = frame[c].dropna()
        unseen = (~values.isin(list(profile["columns"][c]["frequencies"]))).mean() if len(values) else 0.0
        out[f"categories:{c}"] = unseen <= v.max_unseen_category_fraction
    cols = [c for c in known_columns(params) if c in frame.columns]
    out["duplicates"] = frame[cols].duplicated(keep=False).mean() <= v.max_duplicate_fraction
    out["user:mean_age"] = 30 <= frame["age"].mean() <= 48
    out["user:sex"] = bool(frame["sex"].dropna().isin(["Female", "Male"]).all())
    return out


def synthetic(params, rows: int, seed: int = 0) -> pd.DataFrame:
    base = read_table(ROOT / params.data.train, params).dropna()
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    frame["fnlwgt"] = rng.integers(10_000, 1_500_000, rows).astype("float64")
    return frame


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    os.chdir(ROOT)
    params = load_params("params.yaml")
    profile = load_profile(params.validate_.profile, params)
    frame = synthetic(params, args.rows)
    validate_frame(frame.head(1000), params, file="warmup", profile=profile, root=ROOT)  # imports, first context

    gx_s, report = timed(lambda: validate_frame(frame, params, file="synthetic", profile=profile, root=ROOT), 2)
    pd_s, checks = timed(lambda: pandas_contract(frame, params, profile), 2)
    gx_failed = sorted({f"{c.expectation}:{c.column}" for c in report.failures})
    pd_failed = sorted(k for k, ok in checks.items() if not ok)

    files = [params.data.train, params.data.test]
    read_s, frames = timed(lambda: {str(p): read_table(p, params) for p in files})
    demo_s, demo = timed(lambda: validate_frames(frames, params, profile=profile, root=ROOT))
    docs_dir = Path("/tmp/mtl-bench-data-docs")
    docs_s, _ = timed(lambda: validate_frames(frames, params, profile=profile, root=ROOT, docs_dir=docs_dir))
    demo_rows = sum(r.rows for r in demo)

    rows = [
        ("Great Expectations contract", f"{args.rows:,}", f"{gx_s:.2f}", f"{args.rows / gx_s:,.0f}",
         f"{len(report.checks)} checks, {len(gx_failed)} failed"),
        ("hand-written pandas, same rules", f"{args.rows:,}", f"{pd_s:.2f}", f"{args.rows / pd_s:,.0f}",
         f"{len(checks)} checks, {len(pd_failed)} failed"),
        ("ratio GX / pandas (time)", "", f"{gx_s / pd_s:.1f}x", "", ""),
        ("demo: read train + test", f"{demo_rows:,}", f"{read_s:.2f}", f"{demo_rows / read_s:,.0f}", ""),
        ("demo: GX contract, train + test", f"{demo_rows:,}", f"{demo_s:.2f}", f"{demo_rows / demo_s:,.0f}",
         f"{sum(len(r.checks) for r in demo)} checks"),
        ("demo: GX contract + Data Docs", f"{demo_rows:,}", f"{docs_s:.2f}", f"{demo_rows / docs_s:,.0f}", ""),
    ]
    header = ("what", "rows", "seconds", "rows/s", "notes")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nGX failed: {gx_failed}\npandas failed: {pd_failed}\n(best of 2 for the 1M-row runs; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
