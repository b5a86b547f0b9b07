"""Preprocessing throughput at 1M rows: each step of the preprocess stage, in rows/s, with a bare
``pandas.read_csv`` of the same file as the obvious alternative to the project's defensive reader.

    .venv/bin/python bench/preprocessing.py [--rows 1000000] [--repeats 2]

Data: a synthetic training file of ``--rows`` rows in the demo's schema and format (bench/synth.py: gzip CSV,
header-less, ``?`` for missing). Steps, as pipelines/stages/preprocess.py runs them:

- read: ``pipelines.io.read_table`` (decompress, decode, header sniffing, typed columns, checks) against a
  bare ``pd.read_csv`` with the same options (no checks, default dtypes);
- fit: ``FeaturePreprocessor.fit`` (median imputer + scaler, ordinal encoder) and ``fit_tasks``;
- transform: ``FeaturePreprocessor.transform`` (features to tensors) and ``encode_targets`` (labels);
- save: ``TensorTable.save`` (safetensors).

Best of ``--repeats`` for each step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import COLUMNS, write_table  # noqa: E402
from mtl_core.preprocessing import FeaturePreprocessor  # noqa: E402
from mtl_core.tasks import encode_targets, fit_tasks  # noqa: E402
from pipelines.io import read_table  # noqa: E402
from pipelines.params import load_params  # noqa: E402


def best_of(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    opts = params.data.csv
    with tempfile.TemporaryDirectory(prefix="mtl-prep-") as tmp:
        path = write_table(Path(tmp) / "train.csv.gz", args.rows, seed=0)
        steps = {}
        steps["read: bare pandas.read_csv (no checks)"], _ = best_of(lambda: pd.read_csv(
            path, header=None, names=COLUMNS, sep=opts.sep, na_values=opts.na_values, comment=opts.comment,
            skipinitialspace=opts.skipinitialspace), args.repeats)
        steps["read: pipelines.io.read_table"], frame = best_of(lambda: read_table(path, params), args.repeats)
        pre = FeaturePreprocessor(params.features)
        steps["fit: FeaturePreprocessor.fit + fit_tasks"], _ = best_of(
            lambda: (pre.fit(frame), fit_tasks(params.tasks, frame)), args.repeats)
        specs = fit_tasks(params.tasks, frame)
        steps["transform: FeaturePreprocessor.transform"], table = best_of(lambda: pre.transform(frame), args.repeats)
        steps["transform: encode_targets"], _ = best_of(lambda: encode_targets(specs, frame), args.repeats)
        steps["save: TensorTable.save (safetensors)"], _ = best_of(
            lambda: table.save(Path(tmp) / "train.safetensors"), args.repeats)
    print(f"\nPreprocessing throughput, {args.rows:,} synthetic Adult-schema rows, best of {args.repeats}\n")
    print("| step | seconds | rows/s |")
    print("|---|---:|---:|")
    for name, seconds in steps.items():
        print(f"| {name} | {seconds:.2f} | {args.rows / seconds:,.0f} |")
    core = sum(s for k, s in steps.items() if not k.startswith("read: bare"))
    print(f"| **all steps but the bare read** | {core:.2f} | {args.rows / core:,.0f} |")


if __name__ == "__main__":
    main()
