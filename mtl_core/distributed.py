"""torch.distributed helpers that are no-ops in a single process."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over dim 0 across all ranks' rows, differentiable, so a batch statistic under DDP equals the
    statistic of the global batch that a single process would see."""
    if not is_distributed():
        return x.mean(dim=0)
    from torch.distributed.nn.functional import all_reduce  # autograd-aware collective

    total = all_reduce(x.sum(dim=0))
    count = all_reduce(torch.tensor(float(x.shape[0]), dtype=x.dtype, device=x.device))
    return total / count.clamp(min=1)
