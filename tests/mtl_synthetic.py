"""A tiny synthetic two-task problem (binary + 3-class) for the library's unit tests: real data, real training."""

from __future__ import annotations

import torch

from mtl_core.config import ModelConfig
from mtl_core.data import TensorTable
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec

TASKS = [
    TaskSpec(name="a", type="binary", column="a", output_dim=1, classes=["negative", "positive"],
             positive=["1"], primary_metric="roc_auc"),
    TaskSpec(name="b", type="multiclass", column="b", output_dim=3, classes=["x", "y", "z"],
             primary_metric="accuracy"),
]
SCHEMA = FeatureSchema(numeric=[f"n{i}" for i in range(6)], categorical=["c"], cardinalities=[6])
TEXT_SCHEMA = FeatureSchema(numeric=["n0"], categorical=[], cardinalities=[], text=["t"], text_buckets=[50])


def small_model_config(architecture: str, **overrides) -> ModelConfig:
    values = dict(architecture=architecture, embedding_dim=4, encoder_hidden=[32], tower_hidden=[16],
                  representation_dim=8, dropout=0.0, num_experts=2, task_experts=1, ple_levels=2)
    values.update(overrides)
    return ModelConfig(**values)


def synthetic_table(n: int, *, seed: int, missing: float = 0.1) -> TensorTable:
    """Task a: sign of a linear score (shared with b); task b: which of three directions dominates.

    A fraction ``missing`` of each task's labels is masked (NaN / -1), as real tables have.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    cat = torch.randint(1, 6, (n,), generator=g)
    cat_effect = torch.tensor([0.0, -1.0, -0.5, 0.0, 0.5, 1.0])[cat]
    score = x[:, 0] + x[:, 1] + cat_effect + 0.3 * torch.randn(n, generator=g)
    a = (score > 0).float()
    b = torch.stack([x[:, 0] + x[:, 1], x[:, 2], -x[:, 0] + x[:, 3]], dim=1).argmax(dim=1)
    a[torch.rand(n, generator=g) < missing] = float("nan")
    b[torch.rand(n, generator=g) < missing] = -1
    return TensorTable({"x_num": x, "x_cat": cat[:, None], "y__a": a, "y__b": b})


def text_inputs(n: int, *, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (n, 5), generator=g)  # 0 is padding
    return {"x_num": torch.randn(n, 1, generator=g), "x_cat": torch.zeros(n, 0, dtype=torch.int64), "x_text__t": ids}
