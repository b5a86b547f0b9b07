"""Integration: the training pipeline as a real Prefect flow on Prefect's ephemeral API."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def test_training_flow_runs_each_stage_as_a_completed_task(project, prefect_harness):
    from pipelines.flows import STAGES, training_pipeline

    state = training_pipeline(root=str(project), return_state=True)
    assert state.is_completed(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    by_name = {r.name: r for r in runs}
    assert set(by_name) == set(STAGES)
    assert all(r.state.is_completed() for r in runs)
    assert json.loads((project / "metrics/test.json").read_text()).keys() == {"income", "never_married", "relationship"}
    # The flow reproduced the DVC stages, so dvc.lock is true: a following run has nothing to do.
    again = training_pipeline(root=str(project))
    assert all("didn't change, skipping" in out or "up to date" in out for out in again.values())


def test_a_failing_stage_fails_its_task_and_the_flow(tmp_path, prefect_harness):
    from pipelines.flows import training_pipeline
    from tests.conftest import SMOKE_OVERRIDES, make_project_copy

    project = make_project_copy(tmp_path / "p", {**SMOKE_OVERRIDES, "validate": {"min_rows": 10_000_000}})
    state = training_pipeline(root=str(project), return_state=True)
    assert state.is_failed()
    runs = {r.name: r for r in _task_runs(state.state_details.flow_run_id)}
    assert runs["validate"].state.is_failed()
    assert "preprocess" not in runs  # nothing ran on rejected data
    assert not (project / "models/candidate").exists()
