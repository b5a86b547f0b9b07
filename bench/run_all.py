"""Run every benchmark in bench/ in sequence, with settings that fit about 25 minutes on 2 cores.

    make bench                       # or: .venv/bin/python bench/run_all.py
    make bench BENCH_10M=1           # adds the 10M-row scale case (opt-in: about an hour more)
    .venv/bin/python bench/run_all.py --only orchestration scale      # a subset, by name

Each script prints its own table as it finishes; a summary of the wall time of each follows at the end.
The scripts are called as they are, with reduced settings where their defaults are for a longer session
(see BENCHMARKS). bench/ddp_scaling.py reads data/features/, a DVC stage output, which is never produced in
the working tree here: it runs from a temporary copy of the project in which the preprocess stage has run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.orchestration import bench_env  # noqa: E402

# name -> arguments of bench/<script>; reduced where the default budget is longer than this suite's.
BENCHMARKS = {
    "train_speed": ["train_speed.py", "--epochs", "3", "--repeats", "2"],
    "hardware_limit": ["hardware_limit.py", "--epochs", "2"],
    "ddp_scaling": ["ddp_scaling.py", "--epochs", "2", "--threads", "1"],
    "quality": ["quality.py", "--quick", "--seeds", "1"],
    "orchestration": ["orchestration.py", "--epochs", "2"],
    "scale": ["scale.py", "--rows", "100000", "1000000", "--epochs", "2"],
    "validation": ["validation.py", "--rows", "1000000"],
    "preprocessing": ["preprocessing.py", "--rows", "1000000", "--repeats", "1"],
    "predict": ["predict.py", "--rows", "1000000", "--repeats", "1"],
}


def features_copy(base: Path) -> Path:
    """A project copy whose data/features/ holds the demo features (for bench/ddp_scaling.py)."""
    from tests.conftest import make_project_copy

    project = make_project_copy(base / "project")
    subprocess.run([sys.executable, "-m", "pipelines.stages.preprocess"], cwd=project, env=bench_env(), check=True,
                   capture_output=True)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--10m", dest="ten_million", action="store_true", help="add the 10M-row scale case")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=None)
    args = parser.parse_args()
    chosen = args.only or list(BENCHMARKS)
    walls: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="mtl-bench-") as tmp:
        for name in chosen:
            argv = list(BENCHMARKS[name])
            if name == "scale" and args.ten_million:
                argv[argv.index("1000000") + 1:argv.index("1000000") + 1] = ["10000000"]
            cwd = ROOT
            if name == "ddp_scaling":
                cwd = features_copy(Path(tmp))
            print(f"\n=== {name}: bench/{' '.join(argv)} ===", flush=True)
            start = time.perf_counter()
            code = subprocess.run([sys.executable, str(cwd / "bench" / argv[0]), *argv[1:]], cwd=cwd,
                                  env=bench_env()).returncode
            walls[name] = (time.perf_counter() - start, code)
    print("\n| benchmark | minutes | exit |\n|---|---:|---:|")
    for name, (seconds, code) in walls.items():
        print(f"| {name} | {seconds / 60:.1f} | {code} |")
    print(f"| **all** | {sum(s for s, _ in walls.values()) / 60:.1f} | |")
    sys.exit(max((code for _, code in walls.values()), default=0) != 0)


if __name__ == "__main__":
    main()
