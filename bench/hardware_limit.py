"""Trainer against the hardware's limit: achieved FLOP/s of the training step vs a large matmul, same run.

    .venv/bin/python bench/hardware_limit.py [--epochs 2] [--threads 1] [--widths 1,10]

Peak: the best of several ``torch.mm`` of two 2048x2048 float32 matrices (2 n^3 FLOPs each), with the same
number of torch threads as the training. Training: ``Trainer.train_epoch`` (forward, masked task losses,
backward, gradient clipping, AdamW step) on the Adult training tensors (bench/datasets.py), the demo model
(params.yaml) and the same model with every hidden width x10; the first epoch is dropped as warm-up.
FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward+backward of a
full batch: it counts matrix products (mm, addmm, bmm, ...) only, not element-wise work, embeddings
lookups or the optimizer, so the achieved figure is the useful matmul work per second.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import load_dataset  # noqa: E402
from mtl_core.architectures import build_model  # noqa: E402
from mtl_core.data import iter_batches, split_targets  # noqa: E402
from mtl_core.trainer import Trainer  # noqa: E402


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def step_flops(trainer: Trainer, table, batch_size: int) -> int:
    batch = next(iter_batches(table, batch_size=batch_size))
    inputs, targets = split_targets(batch)
    with FlopCounterMode(display=False) as counter:
        output = trainer.model(inputs)
        losses = trainer.task_losses(output, targets)
        (losses.mean() + trainer.model.extra_loss(output, losses)).backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per model; the first is dropped as warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--widths", default="1,10", help="width multipliers of the demo model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("adult")
    train = ds.tables["train"]
    config = ds.params.train.model_copy(update={"epochs": args.epochs, "checkpoint_dir": None})
    peak = matmul_peak()
    rows = []
    for width in [int(w) for w in args.widths.split(",")]:
        m = ds.params.model
        model_cfg = m.model_copy(update={"encoder_hidden": [h * width for h in m.encoder_hidden],
                                         "tower_hidden": [h * width for h in m.tower_hidden],
                                         "representation_dim": m.representation_dim * width})
        torch.manual_seed(0)
        trainer = Trainer(model=build_model(schema=ds.schema, tasks=ds.tasks, config=model_cfg), tasks=ds.tasks,
                          config=config, progress=False)
        flops = step_flops(trainer, train, config.batch_size)
        steps = math.ceil(len(train) / config.batch_size)
        scheduler = trainer._scheduler(steps)
        walls = []
        for epoch in range(args.epochs):
            start = time.perf_counter()
            trainer.train_epoch(train, epoch, scheduler)
            walls.append(time.perf_counter() - start)
        wall = sum(walls[1:]) / max(1, len(walls) - 1)
        achieved = flops * steps / wall  # the last batch is smaller: a slight overestimate of the work, < 2%
        n_params = sum(p.numel() for p in trainer.model.parameters())
        rows.append((f"{width}x", n_params, flops / 1e6, steps * config.batch_size / wall, achieved, achieved / peak))
    print(f"\nTraining step vs matmul peak: Adult train split ({len(train):,} rows), batch {config.batch_size}, "
          f"{args.threads} torch thread(s), torch {torch.__version__}\n")
    print("| model | params | MFLOP/step (matmul, fwd+bwd) | examples/s | achieved GFLOP/s | "
          "peak GFLOP/s (2048^2 matmul) | fraction of peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n_params, mflop, eps, achieved, fraction in rows:
        print(f"| {name} | {n_params:,} | {mflop:,.1f} | {eps:,.0f} | {achieved / 1e9:.2f} | {peak / 1e9:.1f} | "
              f"{fraction:.1%} |")


if __name__ == "__main__":
    main()
