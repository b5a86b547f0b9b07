"""PCGrad, gradient surgery (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020).

On the shared parameters, each task's gradient g_i is projected off every other task's gradient it conflicts
with, visiting the others in random order:

    g_i^PC = g_i;  for j != i (shuffled): if g_i^PC . g_j < 0:  g_i^PC -= (g_i^PC . g_j / ||g_j||^2) g_j
    shared gradient = (1/T) sum_i g_i^PC

Task-specific parameters get the plain gradient of (1/T) sum_i static_i l_i; the extra loss's gradient
(task attention's L_att and L_reg) is added unchanged everywhere. The shuffle uses the strategy's own seeded
generator, so runs are reproducible and every rank draws the same order.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.weighting.base import Weighting, register_weighting
from mtl_core.weighting.gradients import replace_shared_gradient, task_gradients


def project_conflicting(grads: list[torch.Tensor], *, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """PCGrad's projection of each task gradient off the gradients it conflicts with.

    Args:
        grads: T flat gradients of the same length.
        generator: drives the random visiting order (a fresh order per task, as in the paper).

    Returns:
        T projected gradients (new tensors; the inputs are not modified).
    """
    projected = []
    for i, g in enumerate(grads):
        g = g.clone()
        others = [j for j in torch.randperm(len(grads), generator=generator).tolist() if j != i]
        for j in others:
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g -= dot / grads[j].dot(grads[j]).clamp(min=1e-20) * grads[j]
        projected.append(g)
    return projected


@register_weighting("pcgrad")
class PCGradWeighting(Weighting):
    def __init__(self, *, task_names: list[str], static_weights: list[float] | None = None, seed: int = 0) -> None:
        """Args:
            task_names: the tasks, in the model's order.
            static_weights: fixed per-task multipliers (1 by default).
            seed: seed of the generator that shuffles the projection order.
        """
        super().__init__(task_names=task_names, static_weights=static_weights)
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def backward(
        self, task_losses: torch.Tensor, extra_loss: torch.Tensor, *, shared_parameters: list[nn.Parameter]
    ) -> dict[str, float]:
        scaled = self.static_weights * task_losses
        grads = task_gradients(scaled, shared_parameters) if shared_parameters else []
        weights = self.static_weights / self.num_tasks
        (scaled.sum() / self.num_tasks + extra_loss).backward()
        if grads:
            plain = torch.stack(grads).sum(dim=0) / self.num_tasks
            surgery = torch.stack(project_conflicting(grads, generator=self.generator)).sum(dim=0) / self.num_tasks
            replace_shared_gradient(shared_parameters, current=plain, replacement=surgery)
        return {name: float(w) for name, w in zip(self.task_names, weights, strict=True)}
