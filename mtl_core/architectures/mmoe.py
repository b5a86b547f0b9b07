"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

    x = embed(inputs)
    e_k = expert_k(x)                       k = 1..E, shared by all tasks (each an MLP of ``encoder_hidden``)
    g_i = softmax(G_i x)                    one gate per task, [B, E]
    z_i = sum_k g_ik e_k                    the task's own mixture of the shared experts
    y_i = h_i(tower_i(z_i))
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


def task_tower(in_dim: int, config: ModelConfig) -> nn.Sequential:
    """Tower MLP ending in the k-dim task representation (the same shape as shared-bottom's towers)."""
    body, width = mlp(in_dim, config.tower_hidden, config.dropout)
    return nn.Sequential(body, nn.Linear(width, config.representation_dim), nn.ReLU())


class MMoE(MultiTaskModel):
    def __init__(self, *, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        self.embedder = FeatureEmbedder(schema, config.embedding_dim)
        experts = [mlp(self.embedder.out_dim, config.encoder_hidden, config.dropout) for _ in range(config.num_experts)]
        self.experts = nn.ModuleList(e for e, _ in experts)
        expert_dim = experts[0][1]
        self.gates = nn.ModuleDict({t.name: nn.Linear(self.embedder.out_dim, config.num_experts) for t in tasks})
        self.towers = nn.ModuleDict({t.name: task_tower(expert_dim, config) for t in tasks})
        self.heads = nn.ModuleDict({t.name: nn.Linear(config.representation_dim, t.output_dim) for t in tasks})

    def gate_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's softmax over the experts, [B, E]; rows sum to 1."""
        return {name: torch.softmax(self.gates[name](x), dim=-1) for name in self.task_names}

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutput:
        x = self.embedder(inputs)
        experts = torch.stack([expert(x) for expert in self.experts], dim=1)  # [B, E, H]
        logits = {}
        for name, gate in self.gate_weights(x).items():
            mixed = torch.einsum("be,beh->bh", gate, experts)
            logits[name] = self.heads[name](self.towers[name](mixed))
        return ModelOutput(logits)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        # Gates are per task; the embedder and experts are reached by every task's loss.
        yield from self.embedder.parameters()
        yield from self.experts.parameters()


@register_architecture("mmoe")
def build_mmoe(*, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> MMoE:
    return MMoE(schema=schema, tasks=tasks, config=config)
