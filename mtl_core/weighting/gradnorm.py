"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

Learned task weights w_i (an ``nn.Parameter``; renormalised to sum to T before each step) scale the losses,
L = (1/T) sum_i w_i static_i l_i + extra. Separately, w is trained to equalise the tasks' gradient norms on
the shared parameters, in proportion to how far each task still has to go:

    G_i   = w_i ||grad_shared(static_i l_i)||            (per-task gradients, averaged over ranks)
    r_i   = (l_i / l_i(0)) / mean_j (l_j / l_j(0))        relative inverse training rate
    L_gn  = sum_i | G_i - mean_j(G_j) r_i^a |             target treated as a constant
    w.grad = dL_gn / dw

The paper measures G_i on the last shared layer to save time; this uses all shared parameters, which is
exact and affordable for tabular and text models. ``alpha`` (a) is 1.5, the paper's setting for most tasks.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl_core.weighting.base import Weighting, register_weighting
from mtl_core.weighting.gradients import task_gradients


@register_weighting("gradnorm")
class GradNormWeighting(Weighting):
    def __init__(
        self, *, task_names: list[str], static_weights: list[float] | None = None, alpha: float = 1.5
    ) -> None:
        """Args:
            task_names: the tasks, in the model's order.
            static_weights: fixed per-task multipliers (1 by default).
            alpha: the asymmetry a; 0 pulls all gradient norms to the same size.

        Raises:
            ValueError: if ``alpha`` is negative.
        """
        super().__init__(task_names=task_names, static_weights=static_weights)
        if alpha < 0:
            raise ValueError(f"GradNorm alpha must be >= 0, got {alpha}")
        self.alpha = alpha
        self.loss_weights = nn.Parameter(torch.ones(len(task_names)))
        self.register_buffer("initial_losses", torch.full((len(task_names),), float("nan")))

    def backward(
        self, task_losses: torch.Tensor, extra_loss: torch.Tensor, *, shared_parameters: list[nn.Parameter]
    ) -> dict[str, float]:
        with torch.no_grad():  # keep the weights positive and summing to T
            self.loss_weights.clamp_(min=1e-3)
            self.loss_weights.mul_(self.num_tasks / self.loss_weights.sum())
        scaled = self.static_weights * task_losses
        if shared_parameters:
            grads = task_gradients(scaled, shared_parameters)
            norms = torch.stack([g.norm() for g in grads]).detach()
            losses = scaled.detach()  # global-batch means under DDP (the trainer's losses): the same on every rank
            # A masked loss is exactly 0 when the batch has no label for the task: such a task neither sets its
            # L_i(0) (a 0 there would make its ratio explode for the rest of the run) nor takes part in this step.
            present = losses > 0
            first = torch.isnan(self.initial_losses) & present
            self.initial_losses[first] = losses[first]
            active = present & ~torch.isnan(self.initial_losses)
            if active.any():
                ratio = torch.where(active, losses / self.initial_losses, torch.ones_like(losses))
                ratio = ratio / ratio[active].mean().clamp(min=1e-12)
                weighted_norms = self.loss_weights * norms
                target = (weighted_norms[active].mean() * ratio**self.alpha).detach()
                gradnorm_loss = ((weighted_norms - target).abs() * active).sum()
                (weight_grad,) = torch.autograd.grad(gradnorm_loss, self.loss_weights)
                self.loss_weights.grad = weight_grad
            else:
                self.loss_weights.grad = torch.zeros_like(self.loss_weights)
        weights = self.loss_weights.detach() / self.num_tasks
        ((weights * scaled).sum() + extra_loss).backward()
        return {name: float(w) for name, w in zip(self.task_names, weights * self.static_weights, strict=True)}
