"""Progressive Layered Extraction (Tang et al., RecSys 2020): stacked CGC levels.

At each level l, every task i has ``task_experts`` private experts and all tasks share ``num_experts``
shared experts. Task i's gate mixes its own experts and the shared ones; on every level but the last, a
shared gate mixes all experts (every task's and the shared ones) into the input of the next level's shared
experts. With ``ple_levels = 1`` this is CGC.

    level input:  x_i^(l) for each task, x_s^(l) for the shared path (all = embed(inputs) at l = 1)
    E_i = [task experts of i](x_i),  E_s = [shared experts](x_s)
    x_i^(l+1) = softmax(G_i x_i) . [E_i ; E_s]
    x_s^(l+1) = softmax(G_s x_s) . [E_1 ; ... ; E_T ; E_s]        (non-final levels only)
    y_i = h_i(tower_i(x_i^(L+1)))

Expert width at level l is ``encoder_hidden[min(l, len - 1)]``, so the default [128, 64] with two levels
mirrors the shared-bottom encoder's depth.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from mtl_core.architectures.base import ModelOutput, MultiTaskModel, register_architecture
from mtl_core.architectures.mmoe import task_tower
from mtl_core.config import ModelConfig
from mtl_core.layers import FeatureEmbedder, mlp
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec


def _experts(n: int, in_dim: int, width: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList(mlp(in_dim, [width], dropout)[0] for _ in range(n))


def _mix(gate_logits: torch.Tensor, experts: list[torch.Tensor]) -> torch.Tensor:
    weights = torch.softmax(gate_logits, dim=-1)  # [B, n]
    return torch.einsum("bn,bnh->bh", weights, torch.stack(experts, dim=1))


class CGCLevel(nn.Module):
    """One customised-gate-control level: task experts, shared experts, task gates, optional shared gate."""

    def __init__(
        self, *, task_names: list[str], in_dim: int, width: int, config: ModelConfig, final: bool
    ) -> None:
        super().__init__()
        self.task_names = task_names
        self.task_experts = nn.ModuleDict(
            {n: _experts(config.task_experts, in_dim, width, config.dropout) for n in task_names}
        )
        self.shared_experts = _experts(config.num_experts, in_dim, width, config.dropout)
        per_task = config.task_experts + config.num_experts
        self.task_gates = nn.ModuleDict({n: nn.Linear(in_dim, per_task) for n in task_names})
        total = config.task_experts * len(task_names) + config.num_experts
        # Only non-final levels feed a shared path onwards (the paper's shared-expert gate).
        self.shared_gate = None if final else nn.Linear(in_dim, total)

    def forward(
        self, task_inputs: dict[str, torch.Tensor], shared_input: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        shared_out = [e(shared_input) for e in self.shared_experts]
        task_out = {n: [e(task_inputs[n]) for e in self.task_experts[n]] for n in self.task_names}
        mixed = {n: _mix(self.task_gates[n](task_inputs[n]), task_out[n] + shared_out) for n in self.task_names}
        if self.shared_gate is None:
            return mixed, None
        everything = [o for n in self.task_names for o in task_out[n]] + shared_out
        return mixed, _mix(self.shared_gate(shared_input), everything)


class PLE(MultiTaskModel):
    def __init__(self, *, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        self.embedder = FeatureEmbedder(schema, config.embedding_dim)
        levels, in_dim = [], self.embedder.out_dim
        for level in range(config.ple_levels):
            width = config.encoder_hidden[min(level, len(config.encoder_hidden) - 1)]
            final = level == config.ple_levels - 1
            levels.append(CGCLevel(task_names=self.task_names, in_dim=in_dim, width=width, config=config, final=final))
            in_dim = width
        self.levels = nn.ModuleList(levels)
        self.towers = nn.ModuleDict({t.name: task_tower(in_dim, config) for t in tasks})
        self.heads = nn.ModuleDict({t.name: nn.Linear(config.representation_dim, t.output_dim) for t in tasks})

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutput:
        x = self.embedder(inputs)
        task_inputs, shared = {n: x for n in self.task_names}, x
        for level in self.levels:
            task_inputs, shared = level(task_inputs, shared)
        return ModelOutput({n: self.heads[n](self.towers[n](task_inputs[n])) for n in self.task_names})

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        # The embedder, the shared experts and the shared gates are reached by every task's loss. Task experts
        # of non-final levels also reach other tasks through the shared gate, but they are chiefly their own
        # task's, so they keep the ordinary (weighted-sum) gradient.
        yield from self.embedder.parameters()
        for level in self.levels:
            yield from level.shared_experts.parameters()
            if level.shared_gate is not None:
                yield from level.shared_gate.parameters()


@register_architecture("ple")
def build_ple(*, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> PLE:
    return PLE(schema=schema, tasks=tasks, config=config)
