"""Scale: the whole pipeline on synthetic tables of growing size, wall time and peak memory of each stage.

    .venv/bin/python bench/scale.py                          # 100k and 1M rows (about 10 minutes on 2 cores)
    .venv/bin/python bench/scale.py --rows 100000 1000000 10000000   # adds 10M (opt-in: about an hour)

For each size, a fresh temporary copy of the project (tests/conftest.make_project_copy) gets a synthetic
training file of that many rows and a test file of a quarter of it (bench/synth.py: the demo's schema and
format), and its params.yaml points data.train / data.test at them. Every stage then runs as its own process,
exactly the command dvc.yaml gives it (``python -m pipelines.stages.<stage>``; ``python -m pipelines.launch``
for train), without DVC around it (bench/orchestration.py measures DVC's and Prefect's share). Per stage:
wall seconds and the peak resident memory of its process (``ru_maxrss`` from ``os.wait4``).

Settings that differ from the demo, and why: ``train.epochs`` (``--epochs``, default 2, patience the same)
so the training stage measures the cost per epoch rather than an hour of training; one torch thread
(``train.threads_per_process: 1``) so that other jobs on a shared machine do not make thread spinning the
measure; gate thresholds lowered (the synthetic labels are not Adult's). Everything else is params.yaml's.

The growth factor is the ratio of a stage's figure between two sizes, per 10x rows (10 = linear in time).
Without the 10M run, training's peak memory at 10M is extrapolated linearly from 100k and 1M (and says so).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.orchestration import LOW_GATE, bench_env  # noqa: E402
from bench.synth import write_dataset  # noqa: E402

STAGE_COMMANDS = {
    "validate": ["-m", "pipelines.stages.validate"],
    "preprocess": ["-m", "pipelines.stages.preprocess"],
    "train": ["-m", "pipelines.launch"],
    "evaluate": ["-m", "pipelines.stages.evaluate"],
    "gate": ["-m", "pipelines.stages.gate"],
}


def run_stage(argv: list[str], cwd: Path, log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one stage process; exits with its log tail if it fails."""
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=bench_env(), stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}) in {cwd}:\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports kilobytes


def measure(rows: int, epochs: int, base: Path) -> dict:
    from tests.conftest import make_project_copy

    synth = "data/synth"
    project = make_project_copy(base / f"rows{rows}", {
        "data": {"train": f"{synth}/train.csv.gz", "test": f"{synth}/test.csv.gz"},
        "train": {"epochs": epochs, "patience": epochs, "threads_per_process": 1},
        "gate": LOW_GATE,
    })
    start = time.perf_counter()
    train, test = write_dataset(project / synth, rows)
    result = {"rows": rows, "generate_s": time.perf_counter() - start,
              "file_mb": (train.stat().st_size + test.stat().st_size) / 1e6, "stages": {}}
    for stage, argv in STAGE_COMMANDS.items():
        wall, rss = run_stage(argv, project, base / f"rows{rows}-{stage}.log")
        result["stages"][stage] = {"seconds": wall, "peak_mb": rss}
        print(f"  {rows:>10,} rows  {stage:<10} {wall:8.1f} s  {rss:8.0f} MB", file=sys.stderr, flush=True)
    metrics = json.loads((project / "metrics/test.json").read_text())
    result["test_primary"] = {t: round(next(iter(m.values())), 4) for t, m in metrics.items()}
    result["epochs_run"] = json.loads((project / "metrics/train.json").read_text())["epochs_run"]
    return result


def report(results: list[dict], epochs: int) -> None:
    print(f"\nScale: synthetic Adult-schema tables (train file = rows, test file = rows/4), train.epochs={epochs}, "
          f"1 torch thread, {os.cpu_count()} CPUs; each stage its own process\n")
    print("| rows | stage | seconds | rows/s (train file) | peak RSS (MB) |")
    print("|---:|---|---:|---:|---:|")
    for r in results:
        for stage, s in r["stages"].items():
            print(f"| {r['rows']:,} | {stage} | {s['seconds']:.1f} | {r['rows'] / s['seconds']:,.0f} | {s['peak_mb']:,.0f} |")
        total = sum(s["seconds"] for s in r["stages"].values())
        print(f"| {r['rows']:,} | **whole pipeline** | {total:.1f} | {r['rows'] / total:,.0f} | "
              f"{max(s['peak_mb'] for s in r['stages'].values()):,.0f} |")
    for small, big in zip(results, results[1:], strict=False):
        factor = big["rows"] / small["rows"]
        per10 = 1 / math.log10(factor)  # ratios are normalised to one 10x step of rows
        print(f"\nGrowth from {small['rows']:,} to {big['rows']:,} rows ({factor:.0f}x; 10 = linear per 10x)\n")
        print("| stage | time ratio per 10x rows | memory ratio per 10x rows |")
        print("|---|---:|---:|")
        for stage in STAGE_COMMANDS:
            a, b = small["stages"][stage], big["stages"][stage]
            print(f"| {stage} | {(b['seconds'] / a['seconds']) ** per10:.2f} | {(b['peak_mb'] / a['peak_mb']) ** per10:.2f} |")
    by_rows = {r["rows"]: r for r in results}
    if 10_000_000 in by_rows:
        print(f"\nTraining peak RSS at 10M rows (measured): {by_rows[10_000_000]['stages']['train']['peak_mb']:,.0f} MB")
    elif len(results) >= 2:
        a, b = results[-2], results[-1]
        slope = (b["stages"]["train"]["peak_mb"] - a["stages"]["train"]["peak_mb"]) / (b["rows"] - a["rows"])
        estimate = b["stages"]["train"]["peak_mb"] + slope * (10_000_000 - b["rows"])
        print(f"\nTraining peak RSS at 10M rows (extrapolated linearly from {a['rows']:,} and {b['rows']:,}; not run): "
              f"{estimate:,.0f} MB ({slope * 1e6:,.0f} MB per million rows; target < 8,192 MB)")
    for r in results:
        print(f"\n{r['rows']:,} rows: generated in {r['generate_s']:.1f} s ({r['file_mb']:.0f} MB gzip), "
              f"epochs run {r['epochs_run']}, test primary metrics {r['test_primary']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the raw figures as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (for profiling)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtl-scale-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        results = [measure(rows, args.epochs, base) for rows in sorted(args.rows)]
    report(results, args.epochs)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
