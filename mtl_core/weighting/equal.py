"""Equal weighting: L = (1/T) sum_i w_i l_i + extra, with w_i the static task weights (1 by default)."""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.weighting.base import Weighting, register_weighting


@register_weighting("equal")
class EqualWeighting(Weighting):
    def backward(
        self, task_losses: torch.Tensor, extra_loss: torch.Tensor, *, shared_parameters: list[nn.Parameter]
    ) -> dict[str, float]:
        weights = self.static_weights / self.num_tasks
        ((weights * task_losses).sum() + extra_loss).backward()
        return {name: float(w) for name, w in zip(self.task_names, weights, strict=True)}
