"""Distributed data-parallel training, for real: torchrun, gloo, worker processes (tests/ddp_worker.py).

- 2 processes give the same parameters after one epoch as 1 process on the same global batch
  (tolerance 1e-5 absolute; measured about 2e-7 for equal/PCGrad and 1.5e-6 for task attention);
- SIGKILL of a worker mid-run: with restarts the group resumes from the checkpoint and ends with the test
  metrics of an uninterrupted run (tolerance 1e-6); without restarts the job fails, and a rerun resumes;
- an exception in rank 1 ends the whole job with a non-zero exit in well under 30 s.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mtl_core import checkpoint as C
from mtl_core.architectures import build_model
from mtl_core.config import ModelConfig, TrainConfig
from mtl_core.trainer import Trainer
from pipelines.launch import needs_torchrun, torchrun_argv, worker_env
from tests.ddp_worker import SCHEMA, TASKS, synthetic_table

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENCE_TOLERANCE = 1e-5
RESUME_TOLERANCE = 1e-6
# The crash runs: long enough epochs that a kill after the first checkpoint lands inside the run.
CRASH_RUN = {"variants": ["task_attention"], "epochs": 3, "rows": 3000, "batch_size": 64, "dropout": 0.1}

pytestmark = pytest.mark.integration


def launch_worker(processes: int, config: dict, *, max_restarts: int = 0) -> subprocess.Popen:
    """Start tests.ddp_worker under torchrun exactly as pipelines.launch starts the train stage."""
    cfg = TrainConfig(processes=processes, max_restarts=max_restarts, checkpoint_dir="unused", threads_per_process=1)
    argv = torchrun_argv(cfg, module="tests.ddp_worker") + [json.dumps(config)]
    return subprocess.Popen(argv, cwd=ROOT, env=worker_env(cfg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 150) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s:\n{out[-4000:]}") from None
    return proc.returncode, out


def run_worker(processes: int, config: dict, **kwargs) -> str:
    code, out = finish(launch_worker(processes, config, **kwargs))
    assert code == 0, f"worker job failed (exit {code}):\n{out[-4000:]}"
    return out


def worker_pid(torchrun_pid: int, rank: int) -> int | None:
    """The pid of the worker with RANK=rank among torchrun's children (read from /proc, Linux only)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == torchrun_pid and f"RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def kill_rank_after_first_checkpoint(proc: subprocess.Popen, checkpoint: Path, rank: int = 1) -> float:
    """Wait for the epoch-0 checkpoint, then SIGKILL one worker; returns the seconds since the checkpoint."""
    deadline = time.monotonic() + 120
    while not checkpoint.is_file():
        assert proc.poll() is None, "the job ended before writing its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    seen = time.monotonic()
    time.sleep(0.3)  # into epoch 1
    pid = worker_pid(proc.pid, rank)
    assert pid is not None, f"no worker with RANK={rank} under torchrun pid {proc.pid}"
    os.kill(pid, signal.SIGKILL)
    return time.monotonic() - seen


def max_param_diff(a_path: Path, b_path: Path) -> float:
    a, b = load_file(str(a_path)), load_file(str(b_path))
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())


def metric_diff(a: dict, b: dict) -> float:
    return max(abs(a[t][m] - b[t][m]) for t in a for m in a[t] if not math.isnan(a[t][m]))


# -- exact equivalence ----------------------------------------------------------------------------------


def test_two_processes_match_one_process(tmp_path: Path) -> None:
    variants = ["equal", "pcgrad", "task_attention"]
    base = {"variants": variants, "epochs": 1, "rows": 1200, "batch_size": 64}
    run_worker(1, {**base, "out": str(tmp_path / "one")})
    run_worker(2, {**base, "out": str(tmp_path / "two")})
    for name in variants:
        one = json.loads((tmp_path / "one" / f"{name}.json").read_text())
        two = json.loads((tmp_path / "two" / f"{name}.json").read_text())
        assert (one["world_size"], two["world_size"]) == (1, 2)
        diff = max_param_diff(tmp_path / "one" / f"{name}.safetensors", tmp_path / "two" / f"{name}.safetensors")
        assert diff <= EQUIVALENCE_TOLERANCE, f"{name}: parameters differ by {diff:.3g} after one epoch"
        # the logged training loss is the global batch's, so it matches too
        for task, loss in one["history"][0]["train_loss"].items():
            assert two["history"][0]["train_loss"][task] == pytest.approx(loss, rel=1e-5)


# -- crash and resume -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted")
    run_worker(2, {**CRASH_RUN, "out": str(out), "checkpoint_dir": str(out / "ckpt")})
    return json.loads((out / "task_attention.json").read_text())


def test_sigkill_with_restarts_resumes_and_matches(tmp_path: Path, uninterrupted: dict) -> None:
    config = {**CRASH_RUN, "out": str(tmp_path), "checkpoint_dir": str(tmp_path / "ckpt")}
    proc = launch_worker(2, config, max_restarts=1)
    kill_rank_after_first_checkpoint(proc, tmp_path / "ckpt" / "task_attention" / C.FILENAME)
    code, out = finish(proc)
    assert code == 0, f"the restarted job failed (exit {code}):\n{out[-4000:]}"
    assert "resuming from the checkpoint of epoch" in out, out[-4000:]
    resumed = json.loads((tmp_path / "task_attention.json").read_text())
    assert [r["epoch"] for r in resumed["history"]] == list(range(CRASH_RUN["epochs"]))
    assert metric_diff(uninterrupted["test"], resumed["test"]) <= RESUME_TOLERANCE


def test_sigkill_without_restarts_fails_then_rerun_continues(tmp_path: Path, uninterrupted: dict) -> None:
    config = {**CRASH_RUN, "out": str(tmp_path), "checkpoint_dir": str(tmp_path / "ckpt")}
    proc = launch_worker(2, config, max_restarts=0)
    started = time.monotonic()
    kill_rank_after_first_checkpoint(proc, tmp_path / "ckpt" / "task_attention" / C.FILENAME)
    code, out = finish(proc, timeout=60)
    assert code != 0, "a killed worker without restarts must fail the job"
    assert time.monotonic() - started < 60
    assert not (tmp_path / "task_attention.json").exists(), "the failed run must not have finished"
    state = C.load_checkpoint(tmp_path / "ckpt" / "task_attention")
    assert state is not None and state["epoch"] < CRASH_RUN["epochs"] - 1
    out = run_worker(2, config)  # resume: auto
    assert f"resuming from the checkpoint of epoch {state['epoch']}" in out, out[-4000:]
    resumed = json.loads((tmp_path / "task_attention.json").read_text())
    assert metric_diff(uninterrupted["test"], resumed["test"]) <= RESUME_TOLERANCE


# -- failure is fast ------------------------------------------------------------------------------------


def test_exception_in_rank_1_ends_the_job_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    code, out = finish(launch_worker(2, {"variants": ["equal"], "epochs": 50, "rows": 4000, "batch_size": 16,
                                         "out": str(tmp_path), "fail_rank": 1}), timeout=60)
    elapsed = time.monotonic() - started
    assert code != 0
    assert elapsed < 30, f"the job took {elapsed:.1f} s to fail"
    assert "injected failure on rank 1" in out  # the worker's traceback is shown
    assert not (tmp_path / "equal.json").exists()


# -- in-process pieces (no torchrun) --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a busy 2-core box: extra intra-op threads only contend (10x slower here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _trainer(checkpoint_dir: Path | None, *, epochs: int = 3, resume: str = "auto", callbacks=None) -> Trainer:
    torch.manual_seed(0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=ModelConfig(
        architecture="task_attention", encoder_hidden=[16], tower_hidden=[8], representation_dim=8))
    cfg = TrainConfig(epochs=epochs, batch_size=64, patience=10, weighting="pcgrad", resume=resume,
                      checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None)
    return Trainer(model=model, tasks=TASKS, config=cfg, progress=False, callbacks=callbacks)


class Interrupt(Exception):
    pass


def test_single_process_resume_replays_the_uninterrupted_run(tmp_path: Path) -> None:
    train, val = synthetic_table(600, seed=1), synthetic_table(200, seed=2)
    reference = _trainer(None)
    reference.fit(train, val)

    def crash_at_epoch_2(record) -> None:
        if record.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        _trainer(tmp_path, callbacks=[crash_at_epoch_2]).fit(train, val)
    assert C.load_checkpoint(tmp_path)["epoch"] == 1
    replayed = []
    resumed = _trainer(tmp_path, callbacks=[replayed.append])
    result = resumed.fit(train, val)
    assert [r.epoch for r in replayed] == [0, 1, 2]  # restored records are replayed to the callbacks
    assert [r.epoch for r in result.history] == [0, 1, 2]
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_checkpoint_of_other_data_or_settings_is_ignored(tmp_path: Path) -> None:
    train, val = synthetic_table(300, seed=1), synthetic_table(100, seed=2)
    _trainer(tmp_path, epochs=2).fit(train, val)
    result = _trainer(tmp_path, epochs=3).fit(train, val)  # a different schedule: must start over
    assert [r.epoch for r in result.history] == [0, 1, 2]
    result = _trainer(tmp_path, epochs=3, resume="never").fit(synthetic_table(300, seed=5), val)
    assert len(result.history) == 3


def test_checkpoint_is_atomic_and_loads_without_unpickling(tmp_path: Path) -> None:
    C.save_checkpoint(tmp_path, {"epoch": 3, "weights": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == [C.FILENAME]  # no temporary file left behind
    assert C.load_checkpoint(tmp_path)["epoch"] == 3

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format_version": C.FORMAT_VERSION, "evil": Payload()}, tmp_path / C.FILENAME)
    with pytest.raises(C.CheckpointError, match="cannot be loaded safely"):
        C.load_checkpoint(tmp_path)
    (tmp_path / C.FILENAME).write_bytes(b"truncated")
    with pytest.raises(C.CheckpointError):
        C.load_checkpoint(tmp_path)


def test_launcher_command_lines() -> None:
    one = TrainConfig()
    assert not needs_torchrun(one)
    two = TrainConfig(processes=2)
    argv = torchrun_argv(two)
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in argv and argv[argv.index("--nproc-per-node") + 1] == "2"
    multi = TrainConfig(processes=4, nodes=2, rdzv_endpoint="node0:29400", max_restarts=2, checkpoint_dir="c")
    argv = torchrun_argv(multi)
    assert "--standalone" not in argv
    assert argv[argv.index("--rdzv-endpoint") + 1] == "node0:29400"
    assert argv[argv.index("--nnodes") + 1] == "2" and argv[argv.index("--max-restarts") + 1] == "2"
    assert worker_env(two, base={})["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": 2}, "needs rdzv_endpoint"),
        ({"nodes": 2, "rdzv_endpoint": "node0"}, "host:port"),
        ({"max_restarts": 1, "checkpoint_dir": None}, "needs checkpoint_dir"),
        ({"resume": "sometimes"}, "auto"),
    ],
)
def test_distributed_settings_are_validated(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields)
