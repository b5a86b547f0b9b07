"""Launch the train stage: in this process for one worker, under torchrun for several or for restarts.

    python -m pipelines.launch              (what dvc.yaml runs; reads params.yaml's train section)
    python -m pipelines.launch --dry-run    (print the command it would run)

- one machine (``train.nodes: 1``): ``torchrun --standalone``, which picks a free port, so two jobs on one
  host never fight over 29500;
- several machines: ``--nnodes N --rdzv-backend c10d --rdzv-endpoint host:port --rdzv-id ID``, the same
  command on every machine (docs/distributed.md);
- ``train.processes: 1`` on one machine without restarts skips torchrun (and its second Python start).

The torchrun command is built as an argument list and run without a shell. The exit status is torchrun's:
non-zero when any worker failed (torchrun then ends the others and prints the failing rank's traceback).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from mtl_core.config import TrainConfig
from pipelines.params import ParamsError, load_params
from pipelines.stages.train import thread_budget

STAGE_MODULE = "pipelines.stages.train"


def needs_torchrun(cfg: TrainConfig) -> bool:
    return cfg.processes * cfg.nodes > 1 or cfg.max_restarts > 0


def torchrun_argv(cfg: TrainConfig, *, module: str = STAGE_MODULE, python: str = sys.executable) -> list[str]:
    """The torchrun command line for this train config (torchrun is run as ``python -m torch.distributed.run``,
    so it is the one of this interpreter's environment, whatever PATH says)."""
    argv = [python, "-m", "torch.distributed.run"]
    if cfg.nodes == 1:
        argv += ["--standalone", "--nnodes", "1"]
    else:
        argv += ["--nnodes", str(cfg.nodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", str(cfg.rdzv_endpoint),
                 "--rdzv-id", cfg.rdzv_id]
    argv += ["--nproc-per-node", str(cfg.processes), "--max-restarts", str(cfg.max_restarts),
             # check the workers every 0.5 s: a dead worker ends (or restarts) the group within about a second
             "--monitor-interval", "0.5", "-m", module]
    return argv


def worker_env(cfg: TrainConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The workers' environment: a thread budget (torchrun otherwise forces OMP_NUM_THREADS=1 with a warning)
    and, on one machine, gloo on the loopback interface (a host name that does not resolve cannot break it)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_NUM_THREADS", str(thread_budget(cfg.processes, cfg.threads_per_process)))
    if cfg.nodes == 1:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


ERROR_LINE = re.compile(r"^(error: |\[rank\d+\]: )?(\w+\.)*\w*(Error|Exception)\b.*|^error: .*")


def first_error(lines: list[str]) -> str | None:
    """The first line of the workers' output that states an error (a stage's ``error: ...`` message or an
    exception's last traceback line), skipping torchrun's own ChildFailedError summary."""
    for line in lines:
        text = line.strip()
        if "ChildFailedError" in text or "elastic" in text:
            continue
        if ERROR_LINE.match(text):
            return text
    return None


def launch(cfg: TrainConfig, *, cwd: Path | None = None, module: str = STAGE_MODULE) -> int:
    """Run the train stage as configured and return its exit status.

    The job's output is passed through as it comes; when the job fails, a last line names the first error
    any worker printed, so a caller that keeps only the tail of the output (the Prefect task) still shows
    the cause rather than torchrun's summary. SIGTERM and SIGINT are passed on to torchrun, which stops its
    workers cleanly (a cancelled Prefect task or a Ctrl-C leaves no orphaned worker behind).
    """
    proc = subprocess.Popen(torchrun_argv(cfg, module=module), cwd=cwd, env=worker_env(cfg),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    lines: list[str] = []
    pending = b""
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            pending += chunk
            *complete, pending = pending.replace(b"\r", b"\n").split(b"\n")
            lines += [c.decode(errors="replace") for c in complete if c]
            del lines[:-2000]  # bounded memory on long runs
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code != 0:
        cause = first_error(lines) or "no error message; see the worker output above"
        print(f"train: the distributed job failed (exit {code}): {cause}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        cfg = load_params(Path.cwd() / "params.yaml").train
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if "--dry-run" in args:
        print(" ".join(torchrun_argv(cfg)) if needs_torchrun(cfg) else f"{sys.executable} -m {STAGE_MODULE}")
        return
    if not needs_torchrun(cfg):
        from pipelines.stages.train import main as train_main

        train_main()
        return
    sys.exit(launch(cfg))


if __name__ == "__main__":
    main()
