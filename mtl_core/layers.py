"""Building blocks shared by the architectures: the input embedder and a plain MLP."""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.data import TEXT_PREFIX
from mtl_core.preprocessing import FeatureSchema


def mlp(in_dim: int, hidden: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    """Linear -> ReLU -> Dropout per hidden size; returns the stack and its output width."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers), in_dim


class FeatureEmbedder(nn.Module):
    """Turns the preprocessed inputs into one flat vector per row.

    Numeric features pass through; each categorical column has its own embedding (index 0 = unknown);
    each text column is a mean EmbeddingBag over its hashed n-gram ids (0 = padding).
    """

    def __init__(self, schema: FeatureSchema, embedding_dim: int) -> None:
        super().__init__()
        self.text_columns = list(schema.text)
        self.categorical = nn.ModuleList(nn.Embedding(card, embedding_dim) for card in schema.cardinalities)
        text_dim = 4 * embedding_dim
        self.text = nn.ModuleList(
            nn.EmbeddingBag(buckets, text_dim, mode="mean", padding_idx=0) for buckets in schema.text_buckets
        )
        self.out_dim = len(schema.numeric) + embedding_dim * len(schema.cardinalities) + text_dim * len(self.text)
        if self.out_dim == 0:
            raise ValueError("the feature schema has no inputs")

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [inputs["x_num"]]
        x_cat = inputs["x_cat"]
        parts += [emb(x_cat[:, i]) for i, emb in enumerate(self.categorical)]
        parts += [bag(inputs[TEXT_PREFIX + col]) for col, bag in zip(self.text_columns, self.text, strict=True)]
        return torch.cat(parts, dim=-1)
