"""Integration: scheduled re-fine-tuning with a real Prefect server, real DVC and git, real training.

One project (70% of adult.data, subsampled) is trained and promoted once for the module; the tests then
drive retraining cycles on it in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tests.conftest import BIN, run_cmd

pytestmark = pytest.mark.integration
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(project, [batch-1, batch-2-corrupted, batch-3]) with version 1 promoted."""
    from retrain_demo import make_project

    project, files = make_project(tmp_path_factory.mktemp("retrain") / "demo", quick=True)
    run_cmd(["dvc", "repro"], project)
    run_cmd([str(BIN / "mtl"), "promote"], project)
    return project, files


def _registry(project: Path) -> dict:
    state = json.loads((project / "registry" / "production.json").read_text())
    versions = sorted(p.name for p in (project / "registry" / "versions").iterdir() if p.name.startswith("v"))
    return {"production": state["version"], "versions": versions}


def _git_head(project: Path) -> str:
    return run_cmd(["git", "rev-parse", "HEAD"], project).stdout.strip()


def _retrain(project: Path, *extra: str) -> dict:
    run_cmd([str(BIN / "mtl"), "retrain", *extra], project, timeout=900)
    latest = sorted((project / "reports" / "retrain").glob("*.json"))[-1]
    return json.loads(latest.read_text())


def test_three_cycles_good_corrupted_good(demo):
    project, files = demo
    assert _registry(project) == {"production": 1, "versions": ["v1"]}
    incoming = project / "data" / "incoming"

    # Cycle 1: a good batch is validated, used for fine-tuning, gated, and only then versioned.
    (incoming / files[0].name).write_bytes(files[0].read_bytes())
    head = _git_head(project)
    first = _retrain(project)
    assert first["mode"] == "fine-tune" and first["status"] in ("promoted", "kept")
    assert [b["file"] for b in first["accepted"]] == [files[0].name]
    assert not (incoming / files[0].name).exists()
    batches = sorted((project / "data" / "batches").glob("*batch-1.csv"))
    assert len(batches) == 1 and batches[0].read_bytes() == files[0].read_bytes()
    assert _git_head(project) != head  # the data version is a commit
    reg = _registry(project)
    if first["status"] == "kept":
        assert reg["production"] == 1  # a worse challenger never replaces the champion
    else:
        assert reg["production"] == 2
    rules = {r["rule"]: r for r in first["gate"]["rules"]}
    assert any(r.get("kind") == "champion" for r in rules.values())

    # Cycle 2: the corrupted batch goes to quarantine unchanged; nothing is trained, nothing changes.
    before = (_registry(project), _git_head(project))
    (incoming / files[1].name).write_bytes(files[1].read_bytes())
    second = _retrain(project)
    assert second["status"] == "nothing-to-do" and not second["accepted"]
    assert [b["file"] for b in second["rejected"]] == [files[1].name]
    quarantined = list((project / "data" / "quarantine").glob(f"*{files[1].name}/{files[1].name}"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == files[1].read_bytes()
    assert json.loads((quarantined[0].parent / "report.json").read_text())["status"] == "rejected"
    assert (_registry(project), _git_head(project)) == before

    # Cycle 3: the next good batch becomes data version 2.
    (incoming / files[2].name).write_bytes(files[2].read_bytes())
    third = _retrain(project)
    assert third["status"] in ("promoted", "kept")
    versions = run_cmd([str(BIN / "mtl"), "data", "versions"], project).stdout
    assert "batch-1.csv" in versions and "batch-3.csv" in versions and "corrupted" not in versions


def test_a_second_cycle_while_one_runs_is_skipped(demo):
    project, _ = demo
    with FileLock(str(project / ".dvc" / "tmp" / "mtl-retrain.lock")):
        report = _retrain(project, "--force")
    assert report["status"] == "skipped"


def test_a_cycle_killed_during_training_changes_nothing_and_the_next_completes(demo):
    project, files = demo
    incoming = project / "data" / "incoming"
    batch = incoming / files[3].name
    batch.write_bytes(files[3].read_bytes())
    before = (_registry(project), _git_head(project), sorted(p.name for p in (project / "data" / "batches").iterdir()))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    log = project.parent / "killed-cycle.log"
    proc = subprocess.Popen([str(BIN / "mtl"), "retrain"], cwd=project, env=env, start_new_session=True,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:  # wait until the cycle is in its train stage
            if list((project / "runs" / "retrain").glob("*/data/features/train.safetensors")):
                break
            assert proc.poll() is None, f"the cycle ended before training:\n{log.read_text()[-4000:]}"
            time.sleep(0.2)
        else:
            pytest.fail("the cycle never reached training")
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone if it failed early
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    after = (_registry(project), _git_head(project), sorted(p.name for p in (project / "data" / "batches").iterdir()))
    assert after == before
    assert batch.is_file()  # still waiting for the next cycle
    report = _retrain(project)
    assert report["status"] in ("promoted", "kept")
    assert not batch.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_deployment_has_its_schedule_and_runs_a_triggered_cycle(demo, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.prefect_server import ensure_server

    project, _ = demo
    port = _free_port()
    home = tmp_path / "prefect-home"
    server = ensure_server(port=port, log_path=tmp_path / "server.log", env={"PREFECT_HOME": str(home)})
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": server.api_url,
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    serve_log = open(tmp_path / "serve.log", "wb")
    served = subprocess.Popen([str(BIN / "mtl"), "serve", "--port", str(port), "--cron", "0 3 * * *"],
                              cwd=project, env=env, stdout=serve_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            deployment = None
            for _ in range(240):
                try:
                    deployment = client.read_deployment_by_name("retrain/retrain")
                    break
                except Exception:  # not registered yet (ObjectNotFound), keep polling
                    assert served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                    time.sleep(0.5)
            assert deployment is not None, "deployment never registered"
            assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
            assert deployment.global_concurrency_limit is not None
            assert deployment.global_concurrency_limit.limit == 1

            from prefect.deployments import run_deployment

            run = run_deployment("retrain/retrain", timeout=600, poll_interval=2)
            assert run.state.is_completed(), run.state
            # The schedule itself produced an upcoming run.
            from prefect.client.schemas.filters import (
                DeploymentFilter,
                DeploymentFilterId,
                FlowRunFilter,
                FlowRunFilterState,
                FlowRunFilterStateName,
            )

            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"]))),
            )
            assert scheduled, "the cron schedule has a next run"
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        try:
            served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, signal.SIGKILL)
        server.stop()
        serve_log.close()
