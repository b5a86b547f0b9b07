"""Single-task baseline: one independent network (embedder, encoder, tower, head) per task.

Nothing is shared, so ``shared_parameters`` is empty and gradient-manipulating weightings reduce to a plain
weighted backward. It is the reference a multi-task model must beat to justify sharing.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from mtl_core.architectures.base import ModelOutput, MultiTaskModel, register_architecture
from mtl_core.config import ModelConfig
from mtl_core.layers import FeatureEmbedder, mlp
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec


class SingleTaskNetwork(nn.Module):
    """x -> embedder -> encoder MLP -> tower MLP -> k-dim representation -> head, for one task."""

    def __init__(self, *, schema: FeatureSchema, task: TaskSpec, config: ModelConfig) -> None:
        super().__init__()
        self.embedder = FeatureEmbedder(schema, config.embedding_dim)
        encoder, z_dim = mlp(self.embedder.out_dim, config.encoder_hidden, config.dropout)
        tower, width = mlp(z_dim, config.tower_hidden, config.dropout)
        self.body = nn.Sequential(encoder, tower, nn.Linear(width, config.representation_dim), nn.ReLU())
        self.head = nn.Linear(config.representation_dim, task.output_dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.body(self.embedder(inputs)))


class SingleTask(MultiTaskModel):
    """T independent networks behind the multi-task interface."""

    def __init__(self, *, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        self.networks = nn.ModuleDict(
            {t.name: SingleTaskNetwork(schema=schema, task=t, config=config) for t in tasks}
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutput:
        return ModelOutput({name: self.networks[name](inputs) for name in self.task_names})

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())


@register_architecture("single_task")
def build_single_task(*, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> SingleTask:
    return SingleTask(schema=schema, tasks=tasks, config=config)
