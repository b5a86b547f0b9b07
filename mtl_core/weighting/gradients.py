"""Per-task gradients of the shared parameters, for the strategies that manipulate them (GradNorm, PCGrad).

Both strategies follow one contract, so they work unchanged under data-parallel training:

1. each task's gradient of the shared parameters comes from ``torch.autograd.grad`` (one flat vector per task);
2. the vectors go through ``mtl_core.distributed.average_gradients`` before they are combined, so norms and
   projections are computed on global-batch gradients and every rank makes the same decision;
3. every parameter first gets the ordinary gradient of ``weighted task losses + extra loss`` from one normal
   backward (task-specific parameters keep exactly that); the shared parameters' task-loss part is then
   swapped for the strategy's combination, keeping the extra loss's contribution.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.distributed import average_gradients


def task_gradients(task_losses: torch.Tensor, shared: list[nn.Parameter]) -> list[torch.Tensor]:
    """Flat gradient of each task loss w.r.t. the shared parameters, averaged over ranks.

    The graph is retained: the caller runs a normal backward afterwards. A parameter a task does not reach
    gets zeros, so every vector has the same layout.

    Args:
        task_losses: [T] per-task losses (each already multiplied by its static weight, if any).
        shared: the model's shared parameters (``MultiTaskModel.shared_parameters``).

    Returns:
        T tensors of shape [sum of numel], or T empty tensors when there are no shared parameters.
    """
    if not shared:
        return [task_losses.new_zeros(0) for _ in range(len(task_losses))]
    grads = []
    for loss in task_losses:
        if not loss.requires_grad:  # e.g. a task with no labelled row in this batch under some losses
            grads.append(torch.cat([p.detach().new_zeros(p.numel()) for p in shared]))
            continue
        parts = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        grads.append(torch.cat([
            (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(parts, shared, strict=True)
        ]))
    return average_gradients(grads)


def replace_shared_gradient(
    shared: list[nn.Parameter], *, current: torch.Tensor, replacement: torch.Tensor
) -> None:
    """Add ``replacement - current`` (flat) to the shared parameters' ``.grad``.

    After a normal backward the shared gradient is ``current`` (the plain weighted sum of the task gradients)
    plus the extra loss's gradient; this swaps the first part for the strategy's combination in place.
    """
    delta = replacement - current
    offset = 0
    for p in shared:
        n = p.numel()
        piece = delta[offset : offset + n].view_as(p)
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.add_(piece)
        offset += n
