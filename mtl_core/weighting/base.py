"""Loss-weighting strategies: each turns the per-task losses into gradients, behind one interface.

A strategy is an ``nn.Module`` (so learned weights, such as uncertainty's, live in the optimizer and the
checkpoint) and owns the backward pass, because gradient-manipulating methods (GradNorm, PCGrad) need
per-task gradients of the shared parameters rather than the gradient of one scalar.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Weighting(nn.Module):
    """Common interface; the trainer calls only these methods, never branches on a strategy's name."""

    def __init__(self, *, task_names: list[str], static_weights: list[float] | None = None) -> None:
        super().__init__()
        self.task_names = list(task_names)
        weights = torch.tensor(static_weights or [1.0] * len(task_names), dtype=torch.float32)
        self.register_buffer("static_weights", weights)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def backward(
        self,
        task_losses: torch.Tensor,
        extra_loss: torch.Tensor,
        *,
        shared_parameters: list[nn.Parameter],
    ) -> dict[str, float]:
        """Populate ``.grad`` of all parameters; return the per-task weights used (for logging)."""
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        """Hook for strategies with their own randomness (PCGrad's projection order): follow ``train.seed``."""

    def on_epoch_end(self, epoch: int, mean_task_losses: torch.Tensor) -> None:
        """Hook for strategies that adapt between epochs (DWA)."""


WeightingBuilder = Callable[..., Weighting]
WEIGHTINGS: dict[str, WeightingBuilder] = {}


def register_weighting(name: str) -> Callable[[WeightingBuilder], WeightingBuilder]:
    def wrap(builder: WeightingBuilder) -> WeightingBuilder:
        if name in WEIGHTINGS:
            raise ValueError(f"weighting {name!r} registered twice")
        WEIGHTINGS[name] = builder
        return builder

    return wrap


def build_weighting(
    name: str, *, task_names: list[str], static_weights: list[float] | None = None, seed: int = 0
) -> Weighting:
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {name!r}; allowed: {', '.join(sorted(WEIGHTINGS))}")
    weighting = WEIGHTINGS[name](task_names=task_names, static_weights=static_weights)
    weighting.reseed(seed)
    return weighting
