"""Task attention against docs/method.md, with hand-computed values; masking of missing labels."""

from __future__ import annotations

import math

import pytest
import torch

from mtl_core.architectures import build_model
from mtl_core.architectures.task_attention import attention_loss_terms, attention_weights
from mtl_core.tasks import TaskSpec
from tests.mtl_synthetic import SCHEMA, TASKS, small_model_config, synthetic_table


def _model(architecture="task_attention", seed=0, **attention):
    torch.manual_seed(seed)
    cfg = small_model_config(architecture, attention=attention) if attention else small_model_config(architecture)
    return build_model(schema=SCHEMA, tasks=TASKS, config=cfg)


@pytest.mark.parametrize("similarity", ["cosine", "neg_euclidean"])
@pytest.mark.parametrize("descriptor", ["batch_mean", "learned"])
def test_attention_rows_sum_to_one_in_train_and_eval(similarity, descriptor):
    model = _model(similarity=similarity, descriptor=descriptor)
    inputs = synthetic_table(32, seed=0).inputs
    for training in (True, False):
        model.train(training)
        w = model(inputs).attention
        assert w.shape == (2, 2)
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(dim=1), torch.ones(2))


def test_attention_weights_match_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    tau = 0.5
    cos = [[1, 0, 1 / math.sqrt(2)], [0, 1, 1 / math.sqrt(2)], [1 / math.sqrt(2), 1 / math.sqrt(2), 1]]
    dist = [[0, math.sqrt(5), 1], [math.sqrt(5), 0, math.sqrt(2)], [1, math.sqrt(2), 0]]
    for similarity, s in (("cosine", cos), ("neg_euclidean", [[-d for d in row] for row in dist])):
        expected = torch.tensor([[math.exp(v / tau) for v in row] for row in s])
        expected = expected / expected.sum(dim=1, keepdim=True)
        got = attention_weights(q, similarity=similarity, temperature=tau)
        torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="unknown similarity"):
        attention_weights(q, similarity="dot", temperature=1.0)


def test_attention_loss_and_regulariser_match_hand_computation():
    w = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    losses = torch.tensor([1.0, 2.0])
    l_att, frob = attention_loss_terms(w, losses)
    # c_i = (1/T) sum_j w_ji, the attention task i RECEIVES: c = [(0.7+0.2)/2, (0.3+0.8)/2] = [0.45, 0.55]
    assert float(l_att) == pytest.approx(0.45 * 1.0 + 0.55 * 2.0)
    assert float(frob) == pytest.approx(0.49 + 0.09 + 0.04 + 0.64)
    # The row form sum_i sum_j w_ij l_i would be a plain sum of losses (rows sum to 1); the column form is not.
    assert float(l_att) != pytest.approx(float(losses.sum()) / 2)

    model = _model(alpha=0.1, beta=2.0, **{"lambda": 0.01})
    from mtl_core.architectures.base import ModelOutput

    extra = model.extra_loss(ModelOutput({}, attention=w), losses)
    assert float(extra) == pytest.approx(0.1 * 1.55 + 2.0 * 0.01 * 1.26)


def test_without_mixing_and_losses_task_attention_is_shared_bottom_with_towers():
    ta = _model(mixing=False, alpha=0.0, beta=0.0)
    sb = _model("shared_bottom")
    # Built from the same seed, the shared-bottom layers come first, so they are identical...
    sb_state = sb.state_dict()
    assert all(torch.equal(ta.state_dict()[k], v) for k, v in sb_state.items())
    # ...and the forward pass, loss and gradients agree exactly.
    table = synthetic_table(64, seed=5)
    for model in (ta, sb):
        model.train()
    out_ta, out_sb = ta(table.inputs), sb(table.inputs)
    for name in ("a", "b"):
        torch.testing.assert_close(out_ta.logits[name], out_sb.logits[name])
    losses_ta = torch.stack([t.kind.loss(t, out_ta.logits[t.name], table.targets[t.name]) for t in TASKS])
    losses_sb = torch.stack([t.kind.loss(t, out_sb.logits[t.name], table.targets[t.name]) for t in TASKS])
    assert float(ta.extra_loss(out_ta, losses_ta)) == 0.0
    (losses_ta.mean() + ta.extra_loss(out_ta, losses_ta)).backward()
    losses_sb.mean().backward()
    ta_params = dict(ta.named_parameters())
    for name, p in sb.named_parameters():
        torch.testing.assert_close(ta_params[name].grad, p.grad, msg=name)


@pytest.mark.parametrize("residual", [True, False])
def test_mixing_combines_representations_with_the_attention_rows(residual):
    model = _model(residual=residual, descriptor="learned")
    model.eval()
    inputs = synthetic_table(16, seed=6).inputs
    u = model.representations(model.encode(inputs))
    w = model(inputs).attention
    mixed = torch.einsum("ij,bjk->bik", w, u)
    expected_u = u + mixed if residual else mixed
    out = model(inputs)
    for i, name in enumerate(model.task_names):
        torch.testing.assert_close(out.logits[name], model.heads[name](expected_u[:, i]))


def test_eval_predictions_do_not_depend_on_the_batch():
    model = _model(descriptor="batch_mean")
    model.train()
    for seed in range(3):  # a few training-mode passes fill the running descriptor
        model(synthetic_table(64, seed=seed).inputs)
    model.eval()
    table = synthetic_table(40, seed=9)
    together = model(table.inputs).logits["b"]
    alone = model({k: v[:5] for k, v in table.inputs.items()}).logits["b"]
    torch.testing.assert_close(alone, together[:5])
    assert bool(model.running_initialised)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_masked_labels_give_zero_gradient(kind):
    spec = {
        "binary": TaskSpec(name="t", type="binary", column="t", output_dim=1, positive=["1"]),
        "multiclass": TaskSpec(name="t", type="multiclass", column="t", output_dim=3, classes=["x", "y", "z"]),
        "regression": TaskSpec(name="t", type="regression", column="t", output_dim=1),
    }[kind]
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, spec.output_dim, generator=g, requires_grad=True)
    if kind == "multiclass":
        target = torch.tensor([0, -1, 2, -1, 1, 0])
    else:
        target = torch.tensor([1.0, float("nan"), 0.0, float("nan"), 1.0, 0.0])
    missing = torch.tensor([False, True, False, True, False, False])
    loss = spec.kind.loss(spec, logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.all(grad[missing] == 0)
    assert torch.all(grad[~missing].abs().sum(dim=1) > 0)
    # And the loss is the mean over labelled rows only (not diluted by the masked ones).
    kept = spec.kind.loss(spec, logits[~missing], target[~missing])
    torch.testing.assert_close(loss, kept)


def test_rows_without_a_label_leave_parameter_gradients_unchanged():
    """A row missing task a's label adds nothing to l_a: the gradient equals that of the labelled rows alone."""
    model = _model("shared_bottom")
    model.eval()  # no dropout: the two passes are comparable
    table = synthetic_table(48, seed=7, missing=0.3)
    a_spec = TASKS[0]
    labelled = ~torch.isnan(table.targets["a"])
    assert 0 < int(labelled.sum()) < 48

    def grads(rows):
        model.zero_grad()
        out = model({k: v[rows] for k, v in table.inputs.items()})
        a_spec.kind.loss(a_spec, out.logits["a"], table.targets["a"][rows]).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    everything, only_labelled = grads(torch.arange(48)), grads(torch.nonzero(labelled).squeeze(1))
    assert everything.keys() == only_labelled.keys()
    for name in everything:
        torch.testing.assert_close(everything[name], only_labelled[name], msg=name)
