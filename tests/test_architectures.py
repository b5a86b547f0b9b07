"""Every architecture: shapes, what it shares, its gates, and that it learns with every weighting."""

from __future__ import annotations

import pytest
import torch

from mtl_core.architectures import ARCHITECTURES, build_model
from mtl_core.architectures.mmoe import MMoE
from mtl_core.architectures.ple import PLE
from mtl_core.config import TrainConfig
from mtl_core.tasks import TaskSpec
from mtl_core.trainer import Trainer
from mtl_core.weighting import WEIGHTINGS
from tests.mtl_synthetic import SCHEMA, TASKS, TEXT_SCHEMA, small_model_config, synthetic_table, text_inputs

ALL_ARCHITECTURES = ["single_task", "shared_bottom", "mmoe", "ple", "task_attention"]
ALL_WEIGHTINGS = ["equal", "uncertainty", "dwa", "gradnorm", "pcgrad"]


def test_registries_hold_every_peer_method():
    assert set(ALL_ARCHITECTURES) <= set(ARCHITECTURES)
    assert set(ALL_WEIGHTINGS) <= set(WEIGHTINGS)


@pytest.mark.parametrize("architecture", ALL_ARCHITECTURES)
def test_output_shapes_for_every_task_type_and_text_features(architecture):
    tasks = TASKS + [TaskSpec(name="r", type="regression", column="r", output_dim=1, primary_metric="rmse")]
    torch.manual_seed(0)
    model = build_model(schema=TEXT_SCHEMA, tasks=tasks, config=small_model_config(architecture))
    out = model(text_inputs(7, seed=0))
    assert {k: tuple(v.shape) for k, v in out.logits.items()} == {"a": (7, 1), "b": (7, 3), "r": (7, 1)}
    assert all(torch.isfinite(v).all() for v in out.logits.values())


@pytest.mark.parametrize("architecture", ALL_ARCHITECTURES)
def test_shared_parameters_are_reached_by_every_task(architecture):
    torch.manual_seed(0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=small_model_config(architecture))
    shared = list(model.shared_parameters())
    ids = {id(p) for p in model.parameters()}
    assert all(id(p) in ids for p in shared)
    if architecture == "single_task":
        assert shared == []
        return
    assert shared, f"{architecture} shares nothing"
    inputs = synthetic_table(64, seed=1).inputs
    out = model(inputs)
    for name in model.task_names:
        grads = torch.autograd.grad(out.logits[name].sum(), shared, retain_graph=True, allow_unused=True)
        reached = [g is not None and g.abs().sum() > 0 for g in grads]
        assert sum(reached) >= len(shared) // 2, f"task {name} reaches few shared parameters"


def test_single_task_networks_are_independent():
    torch.manual_seed(0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=small_model_config("single_task"))
    out = model(synthetic_table(32, seed=2).inputs)
    out.logits["a"].sum().backward()
    assert all(p.grad is None for p in model.networks["b"].parameters())
    assert any(p.grad is not None for p in model.networks["a"].parameters())


def test_mmoe_gates_are_per_task_distributions():
    torch.manual_seed(0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=small_model_config("mmoe", num_experts=3))
    assert isinstance(model, MMoE)
    gates = model.gate_weights(model.embedder(synthetic_table(16, seed=3).inputs))
    assert set(gates) == {"a", "b"}
    for g in gates.values():
        assert g.shape == (16, 3)
        torch.testing.assert_close(g.sum(dim=1), torch.ones(16))


@pytest.mark.parametrize("levels", [1, 3])
def test_ple_has_shared_gates_on_non_final_levels_only(levels):
    torch.manual_seed(0)
    cfg = small_model_config("ple", ple_levels=levels, encoder_hidden=[32, 16], task_experts=2, num_experts=3)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=cfg)
    assert isinstance(model, PLE)
    assert len(model.levels) == levels
    assert [lvl.shared_gate is not None for lvl in model.levels] == [True] * (levels - 1) + [False]
    assert all(len(lvl.task_experts["a"]) == 2 and len(lvl.shared_experts) == 3 for lvl in model.levels)
    # Level widths follow encoder_hidden, the last width repeating.
    assert model.levels[-1].shared_experts[0][0].out_features == (32 if levels == 1 else 16)
    assert model(synthetic_table(8, seed=4).inputs).logits["b"].shape == (8, 3)


@pytest.mark.parametrize("architecture", ALL_ARCHITECTURES)
@pytest.mark.parametrize("weighting", ALL_WEIGHTINGS)
def test_every_architecture_with_every_weighting_learns(architecture, weighting):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train, val = synthetic_table(768, seed=10), synthetic_table(400, seed=11, missing=0.0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=small_model_config(architecture))
    cfg = TrainConfig(seed=0, epochs=6, batch_size=64, learning_rate=1e-2, patience=6, weighting=weighting)
    trainer = Trainer(model=model, tasks=TASKS, config=cfg, progress=False)
    result = trainer.fit(train, val)
    metrics = result.history[result.best_epoch].val_metrics
    # Chance: AUC 0.5, 3-class accuracy ~0.33. The problem is easy; a working method clears these by far.
    assert metrics["a"]["roc_auc"] > 0.85, metrics
    assert metrics["b"]["accuracy"] > 0.6, metrics
