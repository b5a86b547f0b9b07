"""Shared-bottom (hard parameter sharing): one encoder, a tower and a head per task."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from mtl_core.architectures.base import ModelOutput, MultiTaskModel, register_architecture
from mtl_core.config import ModelConfig
from mtl_core.layers import FeatureEmbedder, mlp
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec


class SharedBottom(MultiTaskModel):
    """z = f(x); u_i = g_i(z); y_i = h_i(u_i). Task attention extends this with mixing between the u_i."""

    def __init__(self, *, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        self.embedder = FeatureEmbedder(schema, config.embedding_dim)
        self.bottom, z_dim = mlp(self.embedder.out_dim, config.encoder_hidden, config.dropout)
        self.towers = nn.ModuleDict()
        for t in tasks:
            body, width = mlp(z_dim, config.tower_hidden, config.dropout)
            self.towers[t.name] = nn.Sequential(body, nn.Linear(width, config.representation_dim), nn.ReLU())
        self.heads = nn.ModuleDict({t.name: nn.Linear(config.representation_dim, t.output_dim) for t in tasks})

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.bottom(self.embedder(inputs))

    def representations(self, z: torch.Tensor) -> torch.Tensor:
        """[B, T, k]: each task's representation u_i."""
        return torch.stack([self.towers[name](z) for name in self.task_names], dim=1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutput:
        u = self.representations(self.encode(inputs))
        return ModelOutput({name: self.heads[name](u[:, i]) for i, name in enumerate(self.task_names)})

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.embedder.parameters()
        yield from self.bottom.parameters()


@register_architecture("shared_bottom")
def build_shared_bottom(*, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> SharedBottom:
    return SharedBottom(schema=schema, tasks=tasks, config=config)
