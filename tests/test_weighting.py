"""Loss-weighting strategies: each against its paper's definition, computed by hand on small models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtl_core.architectures import build_model
from mtl_core.config import TrainConfig
from mtl_core.trainer import Trainer
from mtl_core.weighting import build_weighting
from mtl_core.weighting.pcgrad import project_conflicting
from tests.mtl_synthetic import SCHEMA, TASKS, small_model_config, synthetic_table

NAMES = ["a", "b"]


class TwoHeads(nn.Module):
    """A linear shared layer and two linear heads: small enough to compute every gradient by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(3, 4)
        self.head_a, self.head_b = nn.Linear(4, 1), nn.Linear(4, 1)

    def losses(self, x: torch.Tensor, ya: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        z = self.shared(x)
        return torch.stack([((self.head_a(z).squeeze(-1) - ya) ** 2).mean(),
                            ((self.head_b(z).squeeze(-1) - yb) ** 2).mean()])


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _data(conflicting: bool, model: TwoHeads | None = None):
    """Targets whose residuals make task b's gradient (with head b = head a) point against task a's, or along it."""
    model = model or TwoHeads()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, generator=g)
    ya = x @ torch.tensor([1.0, 2.0, -1.0])
    with torch.no_grad():
        model.head_b.load_state_dict(model.head_a.state_dict())
        h = model.head_a(model.shared(x)).squeeze(-1)
    sign = -1.0 if conflicting else 1.0
    yb = h - (sign * 0.5 * (h - ya) + 0.05 * torch.randn(32, generator=g))
    return x, ya, yb


def _flat_shared_grad(model: TwoHeads, loss: torch.Tensor) -> torch.Tensor:
    params = list(model.shared.parameters())
    g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(g, params, strict=True)])


# -- PCGrad ------------------------------------------------------------------------------------------------
def test_pcgrad_projection_leaves_no_conflict_between_two_tasks():
    g = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(200):
        grads = [torch.randn(10, generator=g) for _ in range(2)]
        conflicts += int(grads[0].dot(grads[1]) < 0)
        projected = project_conflicting(grads, generator=g)
        for i, j in [(0, 1), (1, 0)]:
            assert projected[i].dot(grads[j]) >= -1e-5  # g_i^PC no longer points against g_j
        combined = projected[0] + projected[1]
        for j in range(2):  # and the step helps (or leaves) every task, to first order
            assert combined.dot(grads[j]) >= -1e-5
    assert conflicts > 50  # the property was exercised, not vacuous


def test_pcgrad_leaves_non_conflicting_gradients_alone():
    grads = [torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 0.0])]
    out = project_conflicting(grads, generator=torch.Generator().manual_seed(0))
    for a, b in zip(out, grads, strict=True):
        torch.testing.assert_close(a, b)


def test_pcgrad_projection_matches_hand_computation():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    p1, p2 = project_conflicting([g1, g2], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(p1, g1 - (-1.0 / 2.0) * g2)  # [0.5, 0.5]
    torch.testing.assert_close(p2, g2 - (-1.0 / 1.0) * g1)  # [0.0, 1.0]


@pytest.mark.parametrize("conflicting", [True, False])
def test_pcgrad_backward_sets_projected_shared_and_plain_specific_gradients(conflicting):
    model = TwoHeads()
    x, ya, yb = _data(conflicting, model)
    losses = model.losses(x, ya, yb)
    extra = 0.3 * model.shared.weight.pow(2).sum()  # stands in for task attention's extra loss
    ga, gb = _flat_shared_grad(model, losses[0]), _flat_shared_grad(model, losses[1])
    g_extra = _flat_shared_grad(model, extra)
    assert (ga.dot(gb) < 0) == conflicting
    pa, pb = project_conflicting([ga, gb], generator=torch.Generator().manual_seed(0))
    expected_shared = (pa + pb) / 2 + g_extra

    strategy = build_weighting("pcgrad", task_names=NAMES)
    strategy.backward(losses, extra, shared_parameters=list(model.shared.parameters()))
    got_shared = torch.cat([p.grad.reshape(-1) for p in model.shared.parameters()])
    torch.testing.assert_close(got_shared, expected_shared)
    if not conflicting:  # no surgery: the same as equal weighting
        torch.testing.assert_close(got_shared, (ga + gb) / 2 + g_extra)
    # Task-specific parameters: the plain gradient of l_i / T.
    (head_grad,) = torch.autograd.grad(model.losses(x, ya, yb)[0] / 2, [model.head_a.weight])
    torch.testing.assert_close(model.head_a.weight.grad, head_grad)


# -- uncertainty -------------------------------------------------------------------------------------------
def test_uncertainty_log_variances_are_learned_parameters_that_move():
    torch.manual_seed(0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=small_model_config("shared_bottom"))
    cfg = TrainConfig(seed=0, epochs=3, batch_size=64, learning_rate=2e-2, patience=3, weighting="uncertainty")
    trainer = Trainer(model=model, tasks=TASKS, config=cfg, progress=False)
    log_vars = trainer.weighting.log_vars
    assert isinstance(log_vars, nn.Parameter)
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(log_vars) in in_optimizer
    before = log_vars.detach().clone()
    trainer.fit(synthetic_table(512, seed=0), synthetic_table(128, seed=1))
    assert (log_vars.detach() - before).abs().min() > 1e-2
    # Losses fall below 1 on this easy problem, so both precisions rise (s_i -> log l_i < 0).
    assert (log_vars.detach() < 0).all()


def test_uncertainty_loss_matches_formula():
    strategy = build_weighting("uncertainty", task_names=NAMES)
    with torch.no_grad():
        strategy.log_vars.copy_(torch.tensor([0.5, -1.0]))
    losses = torch.tensor([2.0, 0.5], requires_grad=True)
    weights = strategy.backward(losses, torch.zeros(()), shared_parameters=[])
    # d/dl_i of (1/T) sum_i exp(-s_i) l_i + s_i = exp(-s_i) / T; d/ds_i = (1 - exp(-s_i) l_i) / T
    torch.testing.assert_close(losses.grad, torch.tensor([math.exp(-0.5), math.exp(1.0)]) / 2)
    torch.testing.assert_close(strategy.log_vars.grad,
                               torch.tensor([1 - math.exp(-0.5) * 2.0, 1 - math.exp(1.0) * 0.5]) / 2)
    assert weights["b"] == pytest.approx(math.exp(1.0) / 2)


# -- DWA ---------------------------------------------------------------------------------------------------
def test_dwa_weights_follow_the_loss_ratio_of_the_last_two_epochs():
    strategy = build_weighting("dwa", task_names=NAMES)
    losses = torch.tensor([1.0, 1.0], requires_grad=True)
    assert strategy.backward(losses, torch.zeros(()), shared_parameters=[]) == {"a": 0.5, "b": 0.5}
    strategy.on_epoch_end(0, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(strategy.weights, torch.ones(2))  # needs two epochs of history
    strategy.on_epoch_end(1, torch.tensor([0.5, 1.8]))
    r = torch.tensor([0.5 / 1.0, 1.8 / 2.0])
    expected = 2 * torch.softmax(r / 2.0, dim=0)
    torch.testing.assert_close(strategy.weights, expected)
    assert expected[1] > expected[0]  # the task whose loss falls more slowly gets more weight
    losses = torch.tensor([1.0, 1.0], requires_grad=True)
    strategy.backward(losses, torch.zeros(()), shared_parameters=[])
    torch.testing.assert_close(losses.grad, expected / 2)


# -- GradNorm ----------------------------------------------------------------------------------------------
def test_gradnorm_weight_gradient_matches_the_paper_and_model_gradient_is_weighted_sum():
    model = TwoHeads()
    x, ya, yb = _data(conflicting=False, model=model)
    strategy = build_weighting("gradnorm", task_names=NAMES)
    with torch.no_grad():
        strategy.loss_weights.copy_(torch.tensor([1.5, 0.5]))
        strategy.initial_losses.copy_(torch.tensor([4.0, 1.0]))
    losses = model.losses(x, ya, yb)
    norms = torch.stack([_flat_shared_grad(model, losses[0]).norm(), _flat_shared_grad(model, losses[1]).norm()])
    (ga_head,) = torch.autograd.grad(losses[0], [model.head_a.weight], retain_graph=True)
    w = torch.tensor([1.5, 0.5], requires_grad=True)
    ratio = losses.detach() / torch.tensor([4.0, 1.0])
    ratio = ratio / ratio.mean()
    gw = w * norms
    target = (gw.mean() * ratio**1.5).detach()
    (expected_weight_grad,) = torch.autograd.grad((gw - target).abs().sum(), [w])

    shared = list(model.shared.parameters())
    strategy.backward(losses, torch.zeros(()), shared_parameters=shared)
    torch.testing.assert_close(strategy.loss_weights.grad, expected_weight_grad)
    torch.testing.assert_close(model.head_a.weight.grad, 1.5 / 2 * ga_head)


def test_gradnorm_weights_stay_positive_sum_to_t_and_move_in_training():
    torch.manual_seed(0)
    model = build_model(schema=SCHEMA, tasks=TASKS, config=small_model_config("shared_bottom"))
    cfg = TrainConfig(seed=0, epochs=2, batch_size=64, learning_rate=2e-2, patience=2, weighting="gradnorm")
    trainer = Trainer(model=model, tasks=TASKS, config=cfg, progress=False)
    trainer.fit(synthetic_table(512, seed=0), synthetic_table(128, seed=1))
    w = trainer.weighting.loss_weights.detach()
    assert (w > 0).all()
    assert not torch.allclose(w, torch.ones(2))
    logged = trainer.weighting.backward(
        trainer.task_losses(model(synthetic_table(64, seed=3).inputs), synthetic_table(64, seed=3).targets),
        torch.zeros(()), shared_parameters=list(model.shared_parameters()),
    )
    assert sum(logged.values()) * 2 == pytest.approx(2.0, abs=1e-5)  # renormalised: sum_i w_i = T


# -- every strategy ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["equal", "uncertainty", "dwa", "gradnorm", "pcgrad"])
def test_every_strategy_adds_the_extra_loss_gradient(name):
    """With equal task weights and identical tasks, each strategy's shared gradient is the same as equal
    weighting's, and the extra loss's gradient is included (it must combine with task attention's terms)."""
    results = []
    for strategy_name in ("equal", name):
        model = TwoHeads()
        x, ya, _ = _data(conflicting=False, model=model)
        losses = model.losses(x, ya, ya)
        extra = 0.7 * model.shared.bias.sum()
        strategy = build_weighting(strategy_name, task_names=NAMES)
        strategy.backward(losses, extra, shared_parameters=list(model.shared.parameters()))
        results.append(_grads(model))
    for key in results[0]:
        torch.testing.assert_close(results[1][key], results[0][key], msg=key)


def test_gradnorm_survives_a_first_batch_without_labels_for_a_task():
    """A task with no labelled row in the first batch (masked loss exactly 0) must not set L_i(0) = 0, which
    would make its loss ratio explode and hand it all the weight for the rest of the run."""
    model = TwoHeads()
    weighting = build_weighting("gradnorm", task_names=NAMES)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=0.05)
    x, ya, yb = _data(conflicting=False, model=model)
    for step in range(30):
        losses = model.losses(x, ya, yb)
        if step == 0:
            losses = torch.stack([losses[0], losses[1] * 0.0])  # task b: no label in the first batch
        optimizer.zero_grad()
        weights = weighting.backward(losses, losses.new_zeros(()), shared_parameters=list(model.shared.parameters()))
        optimizer.step()
    assert float(weighting.initial_losses[1]) > 1e-6
    assert 0.05 < weights["b"] < 0.95 and 0.05 < weights["a"] < 0.95, weights
