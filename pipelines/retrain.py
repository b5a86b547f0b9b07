"""The `retrain` flow: one cycle of scheduled re-fine-tuning as new data arrives.

    mtl retrain                 one cycle now (ephemeral Prefect API unless PREFECT_API_URL is set)
    mtl serve                   a Prefect server on 127.0.0.1 and the deployment on `retrain.schedule`

One cycle:

1. collect the files in data/incoming/ (none and not forced: "nothing to do");
2. validate each against the data contract; quarantine the rejected ones at once, with their report;
3. build the cycle's data in a workspace (runs/retrain/<time>/): the accepted batches minus a seeded
   holdout, plus a replay sample of the existing training data; the test rows are the original test set
   plus the newest batch's holdout, so champion and challenger are scored on the same rows;
4. fine-tune through the same stages as a full training (validate, preprocess, the torchrun launcher,
   evaluate): warm-started from the production model (its fitted preprocessing and weights,
   `data.preprocessor_from` and `train.init_from`); a schema change, or no production model yet, means a
   full training instead, and the report says so;
5. gate against thresholds and the champion; promote or keep (pipelines/registry.py);
6. only then version the accepted batches with DVC and commit them, so a cycle that dies leaves the
   incoming files where they were for the next one; `dvc push` to the configured remote;
7. a markdown report and a metrics table as Prefect artifacts, and reports/retrain/<time>.json.

The workspace is a directory laid out like the project, with its own params.yaml, so every step is the
stage code `dvc repro` runs; a failed cycle never writes to the project's own outputs or to production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml
from filelock import FileLock, Timeout
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines import datasets
from pipelines.io import GATE_REPORT, TEST_METRICS, read_table
from pipelines.params import Params, load_params
from pipelines.registry import open_registry, promote_candidate, run_gate

WORKSPACE_DIR = Path("runs/retrain")
REPORT_DIR = Path("reports/retrain")


class RetrainError(RuntimeError):
    """A cycle step failed; production, the data set and git are as they were before the cycle."""


@dataclass
class CycleReport:
    started: str
    status: str = "running"  # nothing-to-do | skipped | promoted | kept | failed
    mode: str | None = None  # fine-tune | full
    mode_reason: str | None = None
    accepted: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    metrics_before: dict | None = None
    metrics_after: dict | None = None
    gate: dict | None = None
    production_before: int | None = None
    production_after: int | None = None
    message: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---- steps (each a Prefect task; plain functions underneath) ----------------------------------------------


@task(name="collect-incoming")
def collect(root: str) -> list[str]:
    return [str(p) for p in datasets.discover(Path(root))]


@task(name="validate-batch", task_run_name="validate {path}")
def validate(path: str, params: Params, root: str) -> datasets.BatchResult:
    return datasets.validate_batch(Path(path), params, Path(root))


@task(name="quarantine-batch", retries=2, retry_delay_seconds=2)
def quarantine(result: datasets.BatchResult, root: str) -> str:
    return str(datasets.quarantine(result, Path(root)).relative_to(root))


def _ws_params(params: Params, root: Path, ws: Path, *, warm_bundle: Path | None, registry_path: Path) -> dict:
    """The workspace's params.yaml: the project's, with the cycle's data, the retrain settings and, for a
    fine-tune, the production model's preprocessing and weights."""
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["data"].update({"train": "data/train.parquet", "test": "data/test.parquet", "split_column": None,
                        "batches": None, "subsample": None})
    raw["data"].pop("strip_suffix", None)  # already applied when the rows were read
    raw.setdefault("registry", {})["path"] = str(registry_path)
    validate = raw.setdefault("validate", {})
    for key in ("profile", "expectations"):  # contract files stay the project's own
        if validate.get(key):
            validate[key] = str((root / validate[key]).resolve())
    train = raw.setdefault("train", {})
    train["checkpoint_dir"] = None
    if warm_bundle is not None:
        raw["data"]["preprocessor_from"] = str(warm_bundle)
        train["init_from"] = str(warm_bundle)
        train["epochs"] = params.retrain.epochs
        train["learning_rate"] = params.retrain.learning_rate
    return raw


def _compatible(bundle_description: dict, params: Params) -> str | None:
    """Why the production model cannot be warm-started under the current params (None: it can)."""
    if bundle_description.get("features_config") != params.features.model_dump():
        return "the feature schema changed since the production model was trained"
    tasks = {t["name"]: (t["type"], t["column"], t["output_dim"]) for t in bundle_description.get("tasks", [])}
    current = {}
    for name, cfg in params.tasks.items():
        width = len(cfg.classes) if cfg.type == "multiclass" else 1
        current[name] = (cfg.type, cfg.column, width)
    if tasks != current:
        return "the tasks changed since the production model was trained"
    if bundle_description.get("architecture") != params.model.architecture:
        return f"the architecture changed ({bundle_description.get('architecture')} -> {params.model.architecture})"
    if bundle_description.get("model_config") != params.model.model_dump(mode="json", by_alias=True):
        return "the model settings (layer sizes, attention options, experts) changed"
    for spec in bundle_description.get("tasks", []):
        cfg = params.tasks[spec["name"]]
        if cfg.type == "multiclass" and spec["classes"] != cfg.classes:
            return f"the classes of task {spec['name']!r} changed"
        if cfg.type == "binary" and spec["positive"] != list(cfg.positive or []):
            return f"the positive class of task {spec['name']!r} changed"
    return None


@task(name="prepare-workspace")
def prepare_workspace(params: Params, root: str, accepted: list[datasets.BatchResult], stamp: str) -> dict:
    """Write the cycle's train/test tables and params.yaml into a fresh workspace."""
    root_p = Path(root)
    ws = root_p / WORKSPACE_DIR / stamp
    (ws / "data").mkdir(parents=True, exist_ok=False)
    cfg = params.retrain
    new = pd.concat([read_table(r.path, params) for r in accepted], ignore_index=True) if accepted else None
    from pipelines.stages.preprocess import split_frames

    base = split_frames(params, root_p)  # the current data set (training file + accepted batches)
    old_train = pd.concat([base["train"], base["val"]], ignore_index=True)
    test = base["test"]
    fresh = new
    if new is not None and len(new):
        holdout = new.sample(frac=cfg.holdout_fraction, random_state=params.data.split_seed)
        fresh = new.drop(holdout.index)
        test = pd.concat([test, holdout], ignore_index=True)
        replay_rows = min(len(old_train), int(round(cfg.replay_ratio * len(fresh))))
        replay = old_train.sample(n=replay_rows, random_state=params.data.split_seed) if replay_rows else None
        train = pd.concat([fresh, replay], ignore_index=True) if replay is not None else fresh
    else:
        train = old_train
    registry = open_registry(params, root_p)
    production = registry.production()
    warm, reason = None, "no production model yet"
    if production is not None:
        bundle_dir = registry.bundle_dir(production)
        reason = _compatible(json.loads((bundle_dir / "model.json").read_text()), params)
        if reason is None:
            warm = bundle_dir
    # A full training needs the whole data set, not the fine-tune mix (and never the test holdout).
    if warm is None:
        train = pd.concat([old_train] + ([fresh] if fresh is not None and len(fresh) else []), ignore_index=True)
    train.to_parquet(ws / "data" / "train.parquet", index=False)
    test.to_parquet(ws / "data" / "test.parquet", index=False)
    raw = _ws_params(params, root_p, ws, warm_bundle=warm, registry_path=registry.path)
    (ws / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(ws / "params.yaml")  # fail here, clearly, if the workspace params are invalid
    return {"workspace": str(ws), "mode": "fine-tune" if warm is not None else "full",
            "reason": None if warm is not None else reason, "train_rows": len(train), "test_rows": len(test),
            "production": production}


def _run_stage(module: str, ws: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", module], cwd=ws, env=env, capture_output=True, text=True)
    logger = get_run_logger()
    for line in (proc.stdout + proc.stderr).splitlines()[-40:]:
        if line.strip() and "\r" not in line:
            logger.info(line)
    if proc.returncode != 0:
        raise RetrainError(f"{module} failed in {ws} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


@task(name="cycle-stage", task_run_name="{stage}")
def run_stage(stage: str, workspace: str) -> None:
    """Run one pipeline stage in the workspace; train goes through the torchrun launcher (DDP when configured)."""
    module = "pipelines.launch" if stage == "train" else f"pipelines.stages.{stage}"
    _run_stage(module, Path(workspace))


@task(name="gate-and-promote")
def gate_and_promote(workspace: str) -> dict:
    ws = Path(workspace)
    ws_params = load_params(ws / "params.yaml")
    report = run_gate(ws_params, ws)
    (ws / GATE_REPORT).parent.mkdir(parents=True, exist_ok=True)
    (ws / GATE_REPORT).write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    result = {"gate": report.to_dict(), "promoted": False, "version": None, "message": "gate failed: champion kept"}
    if report.passed:
        promotion = promote_candidate(ws_params, ws)
        result.update(promoted=promotion.promoted, version=promotion.version, message=promotion.message)
    return result


@task(name="accept-batch", retries=2, retry_delay_seconds=2)
def accept(result: datasets.BatchResult, params: Params, root: str) -> dict:
    version = datasets.accept(result, params, Path(root))
    return dict(version.__dict__)


@task(name="dvc-push")
def dvc_push(root: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", "push", "-q"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if proc.returncode != 0:
        # The data is versioned and committed; only the remote copy is missing. Say so; do not fail the cycle.
        get_run_logger().warning(f"dvc push failed (the data stays committed locally): {proc.stderr[-500:]}")
        return "failed"
    return "pushed"


# ---- the flow ------------------------------------------------------------------------------------------------


def _champion_metrics(workspace: Path) -> dict | None:
    gate = json.loads((workspace / GATE_REPORT).read_text()) if (workspace / GATE_REPORT).is_file() else {}
    return gate.get("champion_metrics")


def _markdown(report: CycleReport) -> str:
    lines = [f"# Retrain cycle {report.started}", "", f"**Decision: {report.status}** — {report.message}", ""]
    if report.mode:
        lines += [f"Mode: {report.mode}" + (f" ({report.mode_reason})" if report.mode_reason else ""), ""]
    lines += ["## Batches", "", "| file | status | rows | detail |", "|---|---|---|---|"]
    for b in report.accepted:
        lines.append(f"| {b['file']} | accepted | {b.get('rows')} | {'; '.join(b.get('warnings', []))[:200]} |")
    for b in report.rejected:
        lines.append(f"| {b['file']} | rejected | {b.get('rows')} | {'; '.join(b.get('reasons', []))[:200]} |")
    if report.drift:
        lines += ["", "## Drift", "", "| file | drifted columns |", "|---|---|"]
        for d in report.drift:
            lines.append(f"| {d['file']} | {', '.join(d['drifted']) or 'none'} |")
    if report.metrics_after:
        lines += ["", "## Metrics (same test rows)", "", "| task | metric | champion | challenger |", "|---|---|---|---|"]
        for task_name, values in report.metrics_after.items():
            for metric, value in values.items():
                before = (report.metrics_before or {}).get(task_name, {}).get(metric)
                lines.append(f"| {task_name} | {metric} | {'' if before is None else f'{before:.4f}'} | {value:.4f} |")
    if report.gate:
        lines += ["", "## Gate", "", "| rule | observed | outcome |", "|---|---|---|"]
        for r in report.gate.get("rules", []):
            observed = r.get("observed")
            lines.append(f"| {r['rule']} | {observed if observed is None else f'{observed:.4f}'} | "
                         f"{'pass' if r['passed'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


@flow(name="retrain", log_prints=True)
def retrain(root: str = ".", force: bool | None = None) -> dict:
    """One retraining cycle (see the module docstring). Returns the cycle report as a dict."""
    root_p = Path(root).resolve()
    root = str(root_p)
    params = load_params(root_p / "params.yaml")
    logger = get_run_logger()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    report = CycleReport(started=stamp)
    force = params.retrain.force if force is None else force
    lock = FileLock(str(root_p / ".dvc" / "tmp" / "mtl-retrain.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        report.status, report.message = "skipped", "another retrain cycle is running"
        logger.warning(report.message)
        return _finish(report, root_p)
    try:
        return _cycle(params, root, root_p, stamp, report, force, logger)
    finally:
        lock.release()


def _cycle(params: Params, root: str, root_p: Path, stamp: str, report: CycleReport, force: bool, logger) -> dict:
    registry = open_registry(params, root_p)
    report.production_before = registry.production()
    incoming = collect(root)
    if not incoming and not force:
        report.status, report.message = "nothing-to-do", "no new data in data/incoming/"
        logger.info(report.message)
        return _finish(report, root_p)
    results = [validate(path, params, root) for path in incoming]
    good = [r for r in results if r.accepted]
    for r in results:
        if r.drift is not None:
            report.drift.append({"file": r.path.name, "drifted": [c.column for c in r.drift.columns if c.drifted]})
        if not r.accepted:
            folder = quarantine(r, root)
            report.rejected.append({"file": r.path.name, "rows": r.rows, "reasons": r.reasons, "quarantine": folder})
    if not good and not force:
        report.status, report.message = "nothing-to-do", "no batch passed validation; see data/quarantine/"
        return _finish(report, root_p)
    try:
        plan = prepare_workspace(params, root, good, stamp)
        report.mode, report.mode_reason = plan["mode"], plan["reason"]
        if plan["reason"]:
            logger.warning(f"full training instead of fine-tuning: {plan['reason']}")
        for stage in ("validate", "preprocess", "train", "evaluate"):
            run_stage(stage, plan["workspace"])
        outcome = gate_and_promote(plan["workspace"])
    except Exception as exc:
        report.status, report.message = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        _finish(report, root_p)
        raise
    ws = Path(plan["workspace"])
    report.metrics_after = json.loads((ws / TEST_METRICS).read_text())
    report.metrics_before = _champion_metrics(ws)
    report.gate = outcome["gate"]
    report.status = "promoted" if outcome["promoted"] else "kept"
    report.message = outcome["message"]
    report.production_after = registry.production()
    try:
        for r in good:
            version = accept(r, params, root)
            report.accepted.append({"file": r.path.name, "rows": r.rows, "warnings": r.warnings,
                                    "sha256": r.sha256, "stored_as": version["path"], "git_revision": version["rev"]})
    except Exception as exc:
        # The model decision stands (it is recorded in the registry); the batches not yet accepted stay in
        # data/incoming/ and the next cycle takes them again.
        report.status, report.message = "failed", f"{report.message}; versioning the data failed: {exc}"[:2000]
        _finish(report, root_p)
        raise
    if good:
        dvc_push(root)
    # The workspace keeps the cycle's exact train/test tables (runs/retrain/<time>/data/): the registry record
    # of a promoted version names their md5s, and the accepted batches' sha256s are in the cycle report.
    return _finish(report, root_p)


def _finish(report: CycleReport, root: Path) -> dict:
    if report.production_after is None:
        report.production_after = report.production_before
    path = root / REPORT_DIR / f"{report.started}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    create_markdown_artifact(key="retrain-report", markdown=_markdown(report), description="Retrain cycle")
    rows = [{"task": t, "metric": m, "champion": (report.metrics_before or {}).get(t, {}).get(m), "challenger": v}
            for t, values in (report.metrics_after or {}).items() for m, v in values.items()]
    if rows:
        create_table_artifact(key="retrain-metrics", table=rows, description="Champion vs challenger")
    return report.to_dict()


def serve(*, root: Path, cron: str, name: str = "retrain") -> None:
    """Serve the `retrain` deployment on ``cron`` until stopped; at most one cycle at a time."""
    retrain.serve(name=name, cron=cron, parameters={"root": str(Path(root).resolve())}, global_limit=1,
                  pause_on_shutdown=False)


__all__ = ["CycleReport", "RetrainError", "retrain", "serve"]
