"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

Each task has a learned log-variance s_i = log sigma_i^2 (an ``nn.Parameter`` of the strategy, so the
trainer's optimizer updates it):

    L = (1/T) sum_i [ exp(-s_i) w_i l_i + s_i ] + extra

This is Kendall's ``l_i / sigma_i^2 + log sigma_i^2`` form, used for every task type (as LibMTL does); for a
fixed loss its minimum is at sigma_i^2 = w_i l_i, so noisier (higher-loss) tasks get smaller weights. At
initialisation (s = 0) it equals equal weighting.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.weighting.base import Weighting, register_weighting


@register_weighting("uncertainty")
class UncertaintyWeighting(Weighting):
    def __init__(self, *, task_names: list[str], static_weights: list[float] | None = None) -> None:
        super().__init__(task_names=task_names, static_weights=static_weights)
        self.log_vars = nn.Parameter(torch.zeros(len(task_names)))

    def backward(
        self, task_losses: torch.Tensor, extra_loss: torch.Tensor, *, shared_parameters: list[nn.Parameter]
    ) -> dict[str, float]:
        precision = torch.exp(-self.log_vars)
        total = (precision * self.static_weights * task_losses + self.log_vars).mean() + extra_loss
        # Under DDP the trainer averages every trainable gradient over ranks, the log-variances' included.
        total.backward()
        weights = (precision * self.static_weights).detach() / self.num_tasks
        return {name: float(w) for name, w in zip(self.task_names, weights, strict=True)}
