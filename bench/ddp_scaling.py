"""DDP scaling: examples/s and wall time per training epoch with 1 and 2 processes, same global batch.

    .venv/bin/python bench/ddp_scaling.py [--epochs 3] [--rows N] [--widths 1,10]

For the demo model (params.yaml's model section) and a model 10x wider (every hidden width x10), each
configuration trains under torchrun (gloo, CPU) on the demo features (data/features/train.safetensors,
written by `dvc repro`; synthetic rows of the same shape when absent). Timed: ``Trainer.train_epoch`` only
(no validation), the first epoch dropped as warm-up. Threads: ``--threads 1`` (default) gives every process
one intra-op thread (a fair comparison on a busy machine, where extra threads mostly spin); ``--threads all``
gives one process every core and two processes half each. Efficiency = speedup / processes.
Also printed: the gradient bytes all-reduced per step (4 bytes x trainable parameters, fp32).
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


def worker(cfg: dict) -> None:
    import torch

    from mtl_core import distributed as D
    from mtl_core.architectures import build_model
    from mtl_core.config import TrainConfig
    from mtl_core.trainer import Trainer, seed_everything
    from pipelines.params import load_params
    from pipelines.stages.train import load_features

    torch.set_num_threads(cfg["threads"])
    D.init_from_env(timeout_s=600)
    params = load_params(ROOT / "params.yaml")
    tasks, schema, tables = load_features(ROOT)
    train = tables["train"]
    if cfg["rows"]:
        train = type(train)({k: v[: cfg["rows"]] for k, v in train.tensors.items()})
    scale = cfg["width"]
    model_cfg = params.model.model_copy(update={
        "encoder_hidden": [h * scale for h in params.model.encoder_hidden],
        "tower_hidden": [h * scale for h in params.model.tower_hidden],
        "representation_dim": params.model.representation_dim * scale,
    })
    seed_everything(0)
    model = build_model(schema=schema, tasks=tasks, config=model_cfg)
    train_cfg = TrainConfig(**{**params.train.model_dump(), "checkpoint_dir": None, "epochs": cfg["epochs"]})
    trainer = Trainer(model=model, tasks=tasks, config=train_cfg, progress=False)
    scheduler = trainer._scheduler(math.ceil(len(train) / train_cfg.batch_size))
    walls = []
    for epoch in range(cfg["epochs"]):
        D.barrier()
        start = time.perf_counter()
        trainer.train_epoch(train, epoch, scheduler)
        D.barrier()
        walls.append(time.perf_counter() - start)
    if D.is_main_process():
        n_params = sum(p.numel() for p in trainer._trainable())
        Path(cfg["out"]).write_text(json.dumps({"walls": walls, "rows": len(train), "params": n_params,
                                                "batch": train_cfg.batch_size}))
    D.shutdown()


def measure(processes: int, threads: int, width: int, epochs: int, rows: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cfg = {"threads": threads, "width": width, "epochs": epochs, "rows": rows, "out": str(out)}
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                "--nproc-per-node", str(processes), "--monitor-interval", "0.5", str(Path(__file__).resolve()),
                "--worker", json.dumps(cfg)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo"}
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is dropped as warm-up")
    parser.add_argument("--rows", type=int, default=None, help="cap the training rows (default: all)")
    parser.add_argument("--widths", default="1,10", help="width multipliers of the demo model")
    parser.add_argument("--threads", default="1", help="threads per process: a number, or 'all' (cores / processes)")
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    if not (ROOT / "data/features/train.safetensors").is_file():
        raise SystemExit("data/features/ is missing: run `dvc repro preprocess` (in a copy of the project) first")
    cores = os.cpu_count() or 1
    rows = []
    for width in [int(w) for w in args.widths.split(",")]:
        base = None
        for processes in (1, 2):
            threads = max(1, cores // processes) if args.threads == "all" else int(args.threads)
            r = measure(processes, threads, width, args.epochs, args.rows)
            wall = sum(r["walls"][1:]) / max(1, len(r["walls"]) - 1)
            base = base or wall
            speedup = base / wall
            rows.append((f"{width}x", r["params"], processes, threads, r["batch"], wall, r["rows"] / wall, speedup,
                         speedup / processes, 4 * r["params"]))
    header = ("model", "params", "procs", "threads/proc", "global batch", "s/epoch", "examples/s", "speedup",
              "efficiency", "grad bytes all-reduced/step")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for m, p, n, t, b, w, eps, s, e, by in rows:
        print(f"| {m} | {p:,} | {n} | {t} | {b} | {w:.2f} | {eps:,.0f} | {s:.2f} | {e:.2f} | {by / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
