"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    r_i(t-1) = L_i(t-1) / L_i(t-2)                   each task's rate of descent over the last epoch
    w_i(t)   = T exp(r_i(t-1) / K) / sum_j exp(r_j(t-1) / K)
    L        = (1/T) sum_i w_i(t) static_i l_i + extra

L_i(t) is the mean training loss of task i in epoch t (from ``on_epoch_end``); the first two epochs use
w = 1. K (``temperature``, 2 in the paper) smooths the weights. A task whose loss falls slowly gets more weight.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.weighting.base import Weighting, register_weighting


@register_weighting("dwa")
class DWAWeighting(Weighting):
    def __init__(
        self, *, task_names: list[str], static_weights: list[float] | None = None, temperature: float = 2.0
    ) -> None:
        """Args:
            task_names: the tasks, in the model's order.
            static_weights: fixed per-task multipliers (1 by default).
            temperature: K in the formula; larger is smoother.

        Raises:
            ValueError: if ``temperature`` is not positive.
        """
        super().__init__(task_names=task_names, static_weights=static_weights)
        if temperature <= 0:
            raise ValueError(f"DWA temperature must be > 0, got {temperature}")
        self.temperature = temperature
        n = len(task_names)
        self.register_buffer("weights", torch.ones(n))
        self.register_buffer("previous", torch.full((n,), float("nan")))  # L(t-2)
        self.register_buffer("last", torch.full((n,), float("nan")))  # L(t-1)

    def backward(
        self, task_losses: torch.Tensor, extra_loss: torch.Tensor, *, shared_parameters: list[nn.Parameter]
    ) -> dict[str, float]:
        weights = self.weights * self.static_weights / self.num_tasks
        ((weights * task_losses).sum() + extra_loss).backward()
        return {name: float(w) for name, w in zip(self.task_names, weights, strict=True)}

    def on_epoch_end(self, epoch: int, mean_task_losses: torch.Tensor) -> None:
        # The trainer's task losses are global-batch means under DDP, so every rank computes the same weights.
        losses = mean_task_losses.detach().float().to(self.weights.device)
        self.previous.copy_(self.last)
        self.last.copy_(losses)
        if torch.isnan(self.previous).any():
            return
        rate = self.last / self.previous.clamp(min=1e-12)
        self.weights.copy_(self.num_tasks * torch.softmax(rate / self.temperature, dim=0))
