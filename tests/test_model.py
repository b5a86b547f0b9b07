"""Model shapes, task-attention properties and the trainer on a tiny synthetic problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtl_core.architectures import build_model
from mtl_core.config import FeaturesConfig, ModelConfig, TaskConfig, TrainConfig
from mtl_core.data import TARGET_PREFIX, iter_batches
from mtl_core.preprocessing import FeaturePreprocessor
from mtl_core.tasks import encode_targets, fit_tasks
from mtl_core.trainer import Trainer


def synthetic_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y_bin = np.where(x1 + (colour == "red") > 0.3, "yes", "no")
    y_multi = np.select([x2 > 0.5, x2 < -0.5], ["high", "low"], "mid")
    y_reg = 3 * x1 - x2 + rng.normal(scale=0.1, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "b": y_bin, "m": y_multi, "r": y_reg})


FEATURES = FeaturesConfig(numeric=["x1", "x2"], categorical=["colour"])
TASKS = {
    "b": TaskConfig(column="b", type="binary", positive=["yes"]),
    "m": TaskConfig(column="m", type="multiclass", classes=["low", "mid", "high"]),
    "r": TaskConfig(column="r", type="regression"),
}


def make_tables(frame: pd.DataFrame):
    pre = FeaturePreprocessor(FEATURES).fit(frame)
    specs = fit_tasks(TASKS, frame)
    table = pre.transform(frame)
    for name, y in encode_targets(specs, frame).items():
        table.tensors[TARGET_PREFIX + name] = torch.from_numpy(np.array(y, copy=True))
    return pre, specs, table


@pytest.mark.parametrize("architecture", ["shared_bottom", "task_attention"])
def test_output_shapes(architecture):
    pre, specs, table = make_tables(synthetic_frame(64))
    model = build_model(schema=pre.schema, tasks=specs, config=ModelConfig(architecture=architecture))
    batch = next(iter_batches(table, batch_size=16))
    out = model({k: v for k, v in batch.items() if not k.startswith(TARGET_PREFIX)})
    assert out.logits["b"].shape == (16, 1)
    assert out.logits["m"].shape == (16, 3)
    assert out.logits["r"].shape == (16, 1)
    if architecture == "task_attention":
        assert out.attention.shape == (3, 3)
        assert torch.allclose(out.attention.sum(dim=1), torch.ones(3), atol=1e-6)
        assert (out.attention >= 0).all()


def test_eval_predictions_do_not_depend_on_batch_composition():
    """The batch-mean descriptor uses a running mean in eval mode, so a row scores the same alone."""
    pre, specs, table = make_tables(synthetic_frame(200))
    model = build_model(schema=pre.schema, tasks=specs, config=ModelConfig(architecture="task_attention"))
    trainer = Trainer(model=model, tasks=specs, config=TrainConfig(epochs=1, batch_size=50), progress=False)
    trainer.fit(table, table)
    model.eval()
    inputs = {k: v for k, v in table.tensors.items() if not k.startswith(TARGET_PREFIX)}
    whole = model(inputs).logits["m"][:5]
    alone = torch.cat([model({k: v[i : i + 1] for k, v in inputs.items()}).logits["m"] for i in range(5)])
    assert torch.allclose(whole, alone, atol=1e-5)


def test_trainer_learns_all_task_types_and_is_reproducible():
    pre, specs, train = make_tables(synthetic_frame(800, seed=1))
    _, _, val = make_tables(synthetic_frame(300, seed=2))
    # Re-encode val with the train-fitted transforms (the production path).
    val_frame = synthetic_frame(300, seed=2)
    val = pre.transform(val_frame)
    for name, y in encode_targets(specs, val_frame).items():
        val.tensors[TARGET_PREFIX + name] = torch.from_numpy(np.array(y, copy=True))
    cfg = TrainConfig(epochs=8, batch_size=64, learning_rate=0.01, seed=3)

    def fit():
        torch.manual_seed(cfg.seed)
        model = build_model(schema=pre.schema, tasks=specs, config=ModelConfig(architecture="task_attention"))
        trainer = Trainer(model=model, tasks=specs, config=cfg, progress=False)
        result = trainer.fit(train, val)
        return trainer.evaluate(val)[0], result

    metrics, result = fit()
    assert metrics["b"]["roc_auc"] > 0.9
    assert metrics["m"]["accuracy"] > 0.7
    assert metrics["r"]["r2"] > 0.8
    assert len(result.history) >= 1 and result.history[0].attention is not None
    again, _ = fit()
    assert again == metrics  # same seed, same data -> identical metrics
