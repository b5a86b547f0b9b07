"""What every multi-task architecture provides, and the registry that finds one by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from mtl_core.config import ModelConfig
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec


@dataclass
class ModelOutput:
    logits: dict[str, torch.Tensor]
    attention: torch.Tensor | None = None  # [T, T] task-attention weights, rows sum to 1


class MultiTaskModel(nn.Module):
    """Base class: subclasses build their layers and implement ``forward``.

    ``shared_parameters`` are those every task's loss reaches (GradNorm and PCGrad manipulate their
    per-task gradients); ``extra_loss`` adds architecture-specific terms to the weighted task losses.
    """

    task_names: list[str]

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def extra_loss(self, output: ModelOutput, task_losses: torch.Tensor) -> torch.Tensor:
        return task_losses.new_zeros(())


ArchitectureBuilder = Callable[..., MultiTaskModel]
ARCHITECTURES: dict[str, ArchitectureBuilder] = {}


def register_architecture(name: str) -> Callable[[ArchitectureBuilder], ArchitectureBuilder]:
    def wrap(builder: ArchitectureBuilder) -> ArchitectureBuilder:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = builder
        return builder

    return wrap


def build_model(*, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> MultiTaskModel:
    """Instantiate the configured architecture.

    Raises:
        ValueError: if ``config.architecture`` is not registered.
    """
    if config.architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {config.architecture!r}; allowed: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[config.architecture](schema=schema, tasks=tasks, config=config)
