"""Orchestration overhead: `dvc repro` and the Prefect flow against calling the stage functions directly.

    .venv/bin/python bench/orchestration.py [--epochs 2] [--out results.json]

On the demo data (params.yaml, with ``train.epochs`` cut to ``--epochs`` and one torch thread, so that the
training stage's run-to-run noise does not swamp the overhead; gate thresholds lowered so every mode runs to
the end), each mode runs in its own fresh temporary copy of the project (tests/conftest.make_project_copy;
a fresh copy each time, because DVC's run cache would otherwise restore outputs instead of running stages).
Nothing runs in the working tree.

- direct: one Python process that imports the stage modules and calls each ``run(params, root)`` in turn
  (the train stage in-process, as ``pipelines.launch`` does for ``train.processes: 1``);
- dvc single-item: ``dvc repro --single-item <stage>`` for each stage in turn, which is what each task of
  the Prefect flow runs (one process per stage: DVC's own start, hashing, lock writing, and the stage's
  Python start and imports);
- dvc repro: the whole pipeline in one ``dvc repro``; then a no-op ``dvc repro`` (nothing changed);
- Prefect flow: ``pipelines.flows.training_pipeline`` on Prefect's ephemeral API, after a warm-up flow has
  started the API (its start is reported apart); per-stage times are the task runs' durations read back from
  the API; then the flow again with nothing to do.

Overhead = the orchestrated time minus the direct time (per stage, and per stage on average for the whole
pipeline). Targets: under 2 s per stage once Prefect's API is warm; a no-op `dvc repro` under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("validate", "preprocess", "train", "evaluate", "gate")
LOW_GATE = {"thresholds": {"income": {"roc_auc": 0.6}, "never_married": {"roc_auc": 0.6},
                           "relationship": {"macro_f1": 0.05}}}


def overrides(epochs: int) -> dict:
    return {"train": {"epochs": epochs, "patience": epochs, "threads_per_process": 1}, "gate": LOW_GATE}


def bench_env(extra: dict | None = None) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
            "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180", **(extra or {})}


def timed_run(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    """Wall seconds of a command; raises with its output tail when it fails."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env or bench_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def fresh_copy(base: Path, name: str, epochs: int) -> Path:
    from tests.conftest import make_project_copy  # the tests' copier: tracked files, no stage outputs, git init

    return make_project_copy(base / name, overrides(epochs))


# -- child processes (a mode's imports and Prefect state stay out of the parent) ---------------------------
def child_direct(root: Path) -> dict:
    start = time.perf_counter()
    sys.path.insert(0, str(root))
    os.chdir(root)
    import importlib

    from pipelines.params import load_params

    modules = {s: importlib.import_module(f"pipelines.stages.{s}") for s in STAGES}
    imports = time.perf_counter() - start
    params = load_params(root / "params.yaml")
    stages = {}
    for name, module in modules.items():
        t = time.perf_counter()
        module.run(params, root)
        stages[name] = time.perf_counter() - t
    return {"imports": imports, "stages": stages}


def child_prefect(root: Path) -> dict:
    start = time.perf_counter()
    sys.path.insert(0, str(root))
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from pipelines.flows import training_pipeline

    imports = time.perf_counter() - start

    @flow(name="warm-up")
    def warm_up() -> int:
        return 1

    t = time.perf_counter()
    warm_up()
    warm = time.perf_counter() - t
    t = time.perf_counter()
    state = training_pipeline(root=str(root), return_state=True)
    flow_s = time.perf_counter() - t
    if not state.is_completed():
        raise SystemExit(f"flow failed: {state.message}")
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    tasks = {r.name: (r.end_time - r.start_time).total_seconds() for r in runs}
    t = time.perf_counter()
    training_pipeline(root=str(root))
    noop = time.perf_counter() - t
    return {"imports": imports, "api_start": warm, "flow": flow_s, "tasks": tasks, "noop_flow": noop}


def run_child(mode: str, root: Path, env: dict | None = None) -> tuple[float, dict]:
    out = root.parent / f"{mode}.json"
    wall, _ = timed_run([sys.executable, str(Path(__file__).resolve()), "--child", mode, "--root", str(root),
                         "--out", str(out)], cwd=root, env=env)
    return wall, json.loads(out.read_text())


def measure(epochs: int) -> dict:
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory(prefix="mtl-orch-") as tmp:
        base = Path(tmp)
        res: dict = {"epochs": epochs}
        copy = fresh_copy(base, "direct", epochs)
        res["direct_wall"], res["direct"] = run_child("direct", copy)

        copy = fresh_copy(base, "single", epochs)
        res["single"] = {s: timed_run([*dvc, "repro", "--single-item", s], copy)[0] for s in STAGES}

        copy = fresh_copy(base, "full", epochs)
        res["repro"] = timed_run([*dvc, "repro"], copy)[0]
        res["noop_repro"] = min(timed_run([*dvc, "repro"], copy)[0] for _ in range(2))

        copy = fresh_copy(base, "prefect", epochs)
        env = bench_env({"PREFECT_HOME": str(base / "prefect-home")})
        env.pop("PREFECT_API_URL", None)  # the ephemeral API, as `mtl run` uses without a server
        res["prefect_wall"], res["prefect"] = run_child("prefect", copy, env)
    return res


def report(res: dict) -> None:
    direct = res["direct"]["stages"]
    tasks = res["prefect"]["tasks"]
    print(f"\nOrchestration overhead, demo data (Adult), train.epochs={res['epochs']}, 1 torch thread, "
          f"{os.cpu_count()} CPUs\n")
    print("| stage | direct run() (s) | dvc repro --single-item (s) | overhead (s) | Prefect task (s) | overhead (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for s in STAGES:
        print(f"| {s} | {direct[s]:.2f} | {res['single'][s]:.2f} | {res['single'][s] - direct[s]:+.2f} | "
              f"{tasks.get(s, float('nan')):.2f} | {tasks.get(s, float('nan')) - direct[s]:+.2f} |")
    d_sum = sum(direct.values())
    n = len(STAGES)
    rows = [
        ("direct: stage functions in one process (incl. Python start + imports)", res["direct_wall"],
         f"imports {res['direct']['imports']:.2f} s, stages {d_sum:.2f} s"),
        ("dvc repro --single-item, stage by stage", sum(res["single"].values()), None),
        ("dvc repro (whole pipeline)", res["repro"], None),
        ("Prefect flow (API warm)", res["prefect"]["flow"], None),
    ]
    print("\n| mode | seconds | overhead vs direct | per stage | notes |")
    print("|---|---:|---:|---:|---|")
    for name, secs, note in rows:
        if note is not None:
            print(f"| {name} | {secs:.2f} | - | - | {note} |")
            continue
        over = secs - res["direct_wall"]
        print(f"| {name} | {secs:.2f} | {over:+.2f} | {over / n:+.2f} | |")
    print(f"| no-op `dvc repro` (best of 2) | {res['noop_repro']:.2f} | | | target < 5 s |")
    print(f"| no-op Prefect flow (5 tasks, each a no-op `dvc repro --single-item`) | {res['prefect']['noop_flow']:.2f} | | | |")
    print(f"| Prefect: process imports / ephemeral API start (warm-up flow) | "
          f"{res['prefect']['imports']:.2f} / {res['prefect']['api_start']:.2f} | | | paid once per process |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="train.epochs for every mode")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw figures as JSON")
    parser.add_argument("--child", choices=["direct", "prefect"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_direct(args.root) if args.child == "direct" else child_prefect(args.root)
        args.out.write_text(json.dumps(result))
        return
    sys.path.insert(0, str(ROOT))
    res = measure(args.epochs)
    report(res)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
