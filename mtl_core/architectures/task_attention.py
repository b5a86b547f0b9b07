"""Task attention (docs/method.md): each task draws on the others' representations through weights
computed from task similarity.

    u_i = g_i(f(x))                         task representations, [B, T, k]
    q_i = mean_batch(P u_i)  or  e_i         task descriptors, [T, d]
    s_ij = cos(q_i, q_j) / tau  (or -||q_i - q_j|| / tau)
    W = softmax_j(s_ij)                      rows sum to 1
    u~_i = u_i + sum_j w_ij u_j  (residual)  or  sum_j w_ij u_j
    L_extra = alpha * sum_i c_i l_i + beta * lambda * ||W||_F^2,   c_i = (1/T) sum_j w_ji

In eval mode the batch-mean descriptor uses a running mean of u_i (like batch norm), so a row's
prediction never depends on which other rows share its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtl_core.architectures.base import ModelOutput, register_architecture
from mtl_core.architectures.shared_bottom import SharedBottom
from mtl_core.config import AttentionConfig, ModelConfig
from mtl_core.distributed import global_mean
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec


def attention_weights(q: torch.Tensor, *, similarity: str, temperature: float) -> torch.Tensor:
    """W = softmax over j of sim(q_i, q_j) / temperature, for descriptors q of shape [T, d]."""
    if similarity == "cosine":
        qn = F.normalize(q, dim=-1, eps=1e-8)
        scores = qn @ qn.T
    elif similarity == "neg_euclidean":
        scores = -torch.cdist(q, q)
    else:
        raise ValueError(f"unknown similarity {similarity!r}; allowed: cosine, neg_euclidean")
    return torch.softmax(scores / temperature, dim=-1)


def attention_loss_terms(w: torch.Tensor, task_losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_att, ||W||_F^2): L_att = sum_i c_i l_i with c_i = (1/T) sum_j w_ji, the attention task i receives."""
    received = w.mean(dim=0)
    return (received * task_losses).sum(), (w**2).sum()


class TaskAttention(SharedBottom):
    def __init__(self, *, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> None:
        super().__init__(schema=schema, tasks=tasks, config=config)
        self.att: AttentionConfig = config.attention
        k, d, n_tasks = config.representation_dim, self.att.descriptor_dim, len(tasks)
        # Created after the shared-bottom layers, so the same seed gives the same shared-bottom weights.
        if self.att.descriptor == "batch_mean":
            self.projection = nn.Linear(k, d)
            self.register_buffer("running_u", torch.zeros(n_tasks, k))
            self.register_buffer("running_initialised", torch.zeros((), dtype=torch.bool))
        else:
            self.task_embedding = nn.Parameter(torch.randn(n_tasks, d) * 0.1)
        self.momentum = 0.1

    def descriptors(self, u: torch.Tensor) -> torch.Tensor:
        if self.att.descriptor == "learned":
            return self.task_embedding
        if self.training:
            mean_u = global_mean(u)  # [T, k], over the global batch under DDP
            with torch.no_grad():
                if bool(self.running_initialised):
                    self.running_u.lerp_(mean_u.detach(), self.momentum)
                else:
                    self.running_u.copy_(mean_u.detach())
                    self.running_initialised.fill_(True)
        else:
            mean_u = self.running_u
        return self.projection(mean_u)  # P is affine, so P(mean u) = mean(P u)

    def forward(self, inputs: dict[str, torch.Tensor]) -> ModelOutput:
        u = self.representations(self.encode(inputs))
        w = attention_weights(self.descriptors(u), similarity=self.att.similarity, temperature=self.att.temperature)
        if self.att.mixing:
            mixed = torch.einsum("ij,bjk->bik", w, u)
            u = u + mixed if self.att.residual else mixed
        logits = {name: self.heads[name](u[:, i]) for i, name in enumerate(self.task_names)}
        return ModelOutput(logits, attention=w)

    def extra_loss(self, output: ModelOutput, task_losses: torch.Tensor) -> torch.Tensor:
        if output.attention is None or (self.att.alpha == 0 and self.att.beta == 0):
            return task_losses.new_zeros(())
        l_att, frob = attention_loss_terms(output.attention, task_losses)
        return self.att.alpha * l_att + self.att.beta * self.att.lambda_ * frob


@register_architecture("task_attention")
def build_task_attention(*, schema: FeatureSchema, tasks: list[TaskSpec], config: ModelConfig) -> TaskAttention:
    return TaskAttention(schema=schema, tasks=tasks, config=config)
