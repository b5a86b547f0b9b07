"""In-memory tensor tables and batching by index permutation (no per-row Python).

A ``TensorTable`` is a dict of equally long tensors: inputs (``x_num``, ``x_cat``, ``x_text__<col>``)
and targets (``y__<task>``). It is saved with safetensors, so loading it runs no code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TARGET_PREFIX = "y__"
TEXT_PREFIX = "x_text__"


@dataclass
class TensorTable:
    tensors: dict[str, torch.Tensor]

    def __post_init__(self) -> None:
        lengths = {k: len(v) for k, v in self.tensors.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"tensors of unequal length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values()))) if self.tensors else 0

    def take(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}

    def to(self, device: torch.device | str) -> TensorTable:
        return TensorTable({k: v.to(device) for k, v in self.tensors.items()})

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.tensors.items() if not k.startswith(TARGET_PREFIX)}

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        return {k[len(TARGET_PREFIX):]: v for k, v in self.tensors.items() if k.startswith(TARGET_PREFIX)}

    def save(self, path: str | Path) -> None:
        save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> TensorTable:
        return cls(load_file(str(path)))


def split_targets(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    inputs = {k: v for k, v in batch.items() if not k.startswith(TARGET_PREFIX)}
    targets = {k[len(TARGET_PREFIX):]: v for k, v in batch.items() if k.startswith(TARGET_PREFIX)}
    return inputs, targets


def epoch_permutation(n: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The same permutation on every rank for a given (seed, epoch): ranks then take disjoint slices of it."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def iter_batches(
    table: TensorTable,
    *,
    batch_size: int,
    permutation: torch.Tensor | None = None,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield this rank's share of each global batch.

    ``batch_size`` is the global batch; each rank takes a contiguous 1/world_size slice of it, so the union of
    the ranks' slices is exactly the global batch that one process would see.
    """
    n = len(table)
    order = permutation if permutation is not None else torch.arange(n)
    stop = (n // batch_size) * batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        global_index = order[start : start + batch_size]
        shares = torch.tensor_split(global_index, world_size)
        yield table.take(shares[rank])
