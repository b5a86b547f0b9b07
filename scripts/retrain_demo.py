"""Simulate time passing on UCI Adult: three batches arrive, three retraining cycles run.

    python scripts/retrain_demo.py [--workdir runs/retrain-demo] [--quick]      (`make retrain-demo`)

It makes a separate copy of the project (a git + DVC repository) whose training file is the first 70% of
adult.data; the other 30% become two good batches and one corrupted batch (text in a numeric column,
labels outside their set). Then: train and promote version 1; cycle 1 takes batch 1; cycle 2 gets the
corrupted batch and quarantines it; cycle 3 takes batch 2. It prints the registry history, the data
versions and where the reports are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# --quick: a subsample and few epochs, with gate bounds to match (tests; the full demo uses params.yaml's).
QUICK = {"data": {"subsample": 4000}, "train": {"epochs": 4, "batch_size": 128, "learning_rate": 0.01},
         "retrain": {"epochs": 2, "learning_rate": 0.002},
         "gate": {"thresholds": {"income": {"roc_auc": 0.7}, "never_married": {"roc_auc": 0.7},
                                 "relationship": {"macro_f1": 0.1}}}}


def sh(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def make_project(workdir: Path, quick: bool) -> tuple[Path, list[Path]]:
    """A git+DVC copy of the project trained on 70% of adult.data, and the batch files: good, corrupted, good,
    and a fourth good one that the demo leaves unused."""
    from pipelines.io import read_table
    from pipelines.params import load_params
    from tests.conftest import deep_update, make_project_copy

    if workdir.exists():
        shutil.rmtree(workdir)
    project = make_project_copy(workdir / "project", {})
    params = load_params(project / "params.yaml")
    frame = read_table(project / params.data.train, params).sample(frac=1.0, random_state=7).reset_index(drop=True)
    cut = int(len(frame) * 0.7)
    base, rest = frame.iloc[:cut], frame.iloc[cut:]
    base.to_parquet(project / "data" / "adult" / "initial.parquet", index=False)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["data"]["train"] = "data/adult/initial.parquet"
    deep_update(raw, QUICK if quick else {})
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sh(["git", "add", "-A"], project)
    sh(["git", "-c", "user.name=demo", "-c", "user.email=demo@example.com", "commit", "-qm", "retrain demo: initial data"],
       project)
    quarter = len(rest) // 4
    batches = workdir / "arrivals"
    batches.mkdir()
    good1, good2 = rest.iloc[:quarter], rest.iloc[quarter : 2 * quarter]
    bad = rest.iloc[2 * quarter : 3 * quarter].copy()
    late = rest.iloc[3 * quarter :]  # a fourth arrival, for tests that need one more good batch
    bad["age"] = bad["age"].astype("string")
    bad.loc[bad.index[:50], "age"] = "unknown"
    bad.loc[bad.index[50:120], "income"] = "maybe"
    files = [batches / "batch-1.csv", batches / "batch-2-corrupted.csv", batches / "batch-3.csv",
             batches / "batch-4.csv"]
    for frame_, path in zip((good1, bad, good2, late), files, strict=True):
        frame_.to_csv(path, index=False)
    return project, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "retrain-demo")
    parser.add_argument("--quick", action="store_true", help="subsample and few epochs (tests)")
    args = parser.parse_args()
    project, files = make_project(args.workdir.resolve(), args.quick)
    mtl = str(Path(sys.executable).parent / "mtl")
    print(f"project copy: {project}")
    print("initial training: dvc repro, then mtl promote")
    sh(["dvc", "repro"], project)
    sh([mtl, "promote"], project)
    for i, batch in enumerate(files[:3], start=1):
        # The files have a header row, unlike adult.data: the incoming contract reads them with their header.
        shutil.copy2(batch, project / "data" / "incoming" / batch.name)
        print(f"\ncycle {i}: {batch.name} arrives")
        out = sh([mtl, "retrain"], project).stdout
        print(out.strip())
    print("\nregistry history:")
    print(sh([mtl, "registry", "list"], project).stdout)
    print("data versions:")
    print(sh([mtl, "data", "versions"], project).stdout)
    reports = sorted((project / "reports" / "retrain").glob("*.json"))
    print("reports: " + ", ".join(str(p.relative_to(project)) for p in reports))
    print(f"quarantine: {[str(p.relative_to(project)) for p in (project / 'data' / 'quarantine').glob('*/')]}")
    print(json.dumps([json.loads(p.read_text())["status"] for p in reports]))


if __name__ == "__main__":
    main()
