"""Training throughput: the library's Trainer against a minimal hand-written PyTorch loop, same run.

    .venv/bin/python bench/train_speed.py [--epochs 3] [--repeats 3] [--architectures task_attention shared_bottom]

Both train the same model (same initial weights), on the same Adult training tensors, with the same global
batch size, batch order, AdamW settings and gradient clipping; the hand loop is what one would write in a
notebook (index the in-memory tensors, forward, loss, backward, clip, step). The Trainer is timed through
``fit`` (what users call), so its per-epoch validation pass (on 1,000 validation rows), early-stopping
bookkeeping, LR schedule and logging are included. Each side runs ``--repeats`` times, interleaved, and the
best time of each counts (the machine may be shared). Ratio = Trainer examples/s / hand-loop examples/s.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import load_dataset  # noqa: E402
from mtl_core.architectures import build_model  # noqa: E402
from mtl_core.data import TensorTable, epoch_permutation, split_targets  # noqa: E402
from mtl_core.trainer import Trainer  # noqa: E402


def hand_loop(model: nn.Module, tasks, table: TensorTable, *, epochs: int, batch_size: int, lr: float,
              weight_decay: float, clip: float | None, seed: int) -> float:
    """The minimal loop; returns seconds."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    tensors, n = table.tensors, len(table)
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        perm = epoch_permutation(n, seed=seed, epoch=epoch)
        for i in range(0, n, batch_size):
            index = perm[i : i + batch_size]
            inputs, targets = split_targets({k: v[index] for k, v in tensors.items()})
            output = model(inputs)
            losses = torch.stack([t.kind.loss(t, output.logits[t.name], targets[t.name]) for t in tasks])
            loss = losses.mean() + model.extra_loss(output, losses)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
    return time.perf_counter() - start


def trainer_fit(model: nn.Module, tasks, train: TensorTable, val: TensorTable, config) -> float:
    trainer = Trainer(model=model, tasks=tasks, config=config, progress=False)
    start = time.perf_counter()
    trainer.fit(train, val)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="default: params.yaml train.batch_size")
    parser.add_argument("--architectures", nargs="+", default=["task_attention", "shared_bottom"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = load_dataset("adult")
    train = ds.tables["train"]
    val = TensorTable({k: v[:1000] for k, v in ds.tables["val"].tensors.items()})
    batch_size = args.batch_size or ds.params.train.batch_size
    config = ds.params.train.model_copy(update={
        "epochs": args.epochs, "patience": args.epochs, "batch_size": batch_size, "scheduler": "constant",
        "weighting": "equal", "checkpoint_dir": None,
    })
    rows = []
    for architecture in args.architectures:
        torch.manual_seed(0)
        initial = build_model(schema=ds.schema, tasks=ds.tasks,
                              config=ds.params.model.model_copy(update={"architecture": architecture}))
        best = {"hand": float("inf"), "trainer": float("inf")}
        for _ in range(args.repeats):
            best["hand"] = min(best["hand"], hand_loop(
                copy.deepcopy(initial), ds.tasks, train, epochs=args.epochs, batch_size=batch_size,
                lr=config.learning_rate, weight_decay=config.weight_decay, clip=config.grad_clip, seed=config.seed))
            best["trainer"] = min(best["trainer"], trainer_fit(copy.deepcopy(initial), ds.tasks, train, val, config))
        examples = args.epochs * len(train)
        hand_eps, trainer_eps = examples / best["hand"], examples / best["trainer"]
        rows.append((architecture, hand_eps, trainer_eps, trainer_eps / hand_eps))
    print(f"\nAdult train split: {len(train)} rows, batch {batch_size}, {args.epochs} epochs, best of "
          f"{args.repeats}, torch threads {args.threads}\n")
    print("| architecture | hand-written loop (examples/s) | Trainer.fit (examples/s) | ratio |")
    print("|---|---|---|---|")
    for architecture, hand_eps, trainer_eps, ratio in rows:
        print(f"| {architecture} | {hand_eps:,.0f} | {trainer_eps:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
