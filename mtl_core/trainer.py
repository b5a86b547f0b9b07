"""The training loop: in-memory batches, AdamW, clipping, a cosine schedule, early stopping on the
validation mean of each task's primary metric, and the best weights restored at the end.

Usage (single process)::

    trainer = Trainer(model=model, tasks=specs, config=train_cfg)
    result = trainer.fit(train_table, val_table)
    predictions = trainer.predict(test_table)
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mtl_core.architectures import MultiTaskModel
from mtl_core.config import LOWER_IS_BETTER, TrainConfig
from mtl_core.data import TensorTable, epoch_permutation, iter_batches, split_targets
from mtl_core.tasks import TaskSpec
from mtl_core.weighting import Weighting, build_weighting

EVAL_BATCH = 8192


@dataclass
class EpochRecord:
    epoch: int
    train_loss: dict[str, float]
    val_metrics: dict[str, dict[str, float]]
    val_score: float
    learning_rate: float
    task_weights: dict[str, float]
    attention: list[list[float]] | None = None


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False


EpochCallback = Callable[[EpochRecord], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def validation_score(specs: list[TaskSpec], metrics: dict[str, dict[str, float]]) -> float:
    """Mean over tasks of the primary metric, sign-flipped where lower is better (higher is always better)."""
    values = []
    for s in specs:
        v = metrics[s.name][s.primary_metric]
        values.append(-v if s.primary_metric in LOWER_IS_BETTER else v)
    return float(np.nanmean(values)) if values else math.nan


class Trainer:
    """Trains a multi-task model with a pluggable loss weighting.

    Args:
        model: any registered architecture.
        tasks: the task specs, in the model's task order.
        config: optimisation settings.
        weighting: a strategy object; built from ``config.weighting`` when omitted.
        device: where to train; defaults to CPU.
        callbacks: called with each epoch's record (logging, checkpoints).
        progress: show a progress bar over epochs.
    """

    def __init__(
        self,
        *,
        model: MultiTaskModel,
        tasks: list[TaskSpec],
        config: TrainConfig,
        weighting: Weighting | None = None,
        device: torch.device | str = "cpu",
        callbacks: list[EpochCallback] | None = None,
        progress: bool = True,
    ) -> None:
        if [t.name for t in tasks] != list(model.task_names):
            raise ValueError(f"task order {[t.name for t in tasks]} differs from the model's {model.task_names}")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.tasks = tasks
        self.config = config
        self.weighting = (weighting or build_weighting(
            config.weighting, task_names=[t.name for t in tasks], static_weights=[t.weight for t in tasks]
        )).to(self.device)
        self.callbacks = list(callbacks or [])
        self.progress = progress
        params = list(self.model.parameters()) + list(self.weighting.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    # -- training -----------------------------------------------------------------------------------
    def task_losses(self, output, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([t.kind.loss(t, output.logits[t.name], targets[t.name]) for t in self.tasks])

    def _scheduler(self, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
        total = max(1, self.config.epochs * steps_per_epoch)
        warmup = self.config.warmup_epochs * steps_per_epoch
        cosine = self.config.scheduler == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def train_epoch(self, table: TensorTable, epoch: int, scheduler) -> tuple[dict[str, float], dict[str, float]]:
        self.model.train()
        shared = [p for p in self.model.shared_parameters() if p.requires_grad]
        loss_sum = torch.zeros(len(self.tasks))
        batches = 0
        weights: dict[str, float] = {}
        perm = epoch_permutation(len(table), seed=self.config.seed, epoch=epoch)
        for batch in iter_batches(table, batch_size=self.config.batch_size, permutation=perm):
            inputs, targets = split_targets(batch)
            output = self.model(inputs)
            losses = self.task_losses(output, targets)
            extra = self.model.extra_loss(output, losses)
            self.optimizer.zero_grad(set_to_none=True)
            weights = self.weighting.backward(losses, extra, shared_parameters=shared)
            if self.config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            scheduler.step()
            loss_sum += losses.detach().cpu()
            batches += 1
        mean = loss_sum / max(1, batches)
        self.weighting.on_epoch_end(epoch, mean)
        return {t.name: float(v) for t, v in zip(self.tasks, mean)}, weights

    def fit(self, train: TensorTable, val: TensorTable) -> TrainResult:
        seed_everything(self.config.seed)
        train, val = train.to(self.device), val.to(self.device)
        steps = math.ceil(len(train) / self.config.batch_size)
        scheduler = self._scheduler(steps)
        best_state, best_score, best_epoch, stale = None, -math.inf, -1, 0
        result = TrainResult(best_epoch=-1, best_score=math.nan)
        bar = tqdm(range(self.config.epochs), desc="train", unit="epoch", disable=not self.progress)
        for epoch in bar:
            train_loss, weights = self.train_epoch(train, epoch, scheduler)
            val_metrics, attention = self.evaluate(val)
            score = validation_score(self.tasks, val_metrics)
            record = EpochRecord(
                epoch=epoch, train_loss=train_loss, val_metrics=val_metrics, val_score=score,
                learning_rate=self.optimizer.param_groups[0]["lr"], task_weights=weights,
                attention=attention.tolist() if attention is not None else None,
            )
            result.history.append(record)
            for callback in self.callbacks:
                callback(record)
            bar.set_postfix(loss=f"{sum(train_loss.values()):.4f}", val=f"{score:.4f}")
            if score > best_score:
                best_state = copy.deepcopy(self.model.state_dict())
                best_score, best_epoch, stale = score, epoch, 0
            else:
                stale += 1
                if stale >= self.config.patience:
                    result.stopped_early = True
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        result.best_epoch, result.best_score = best_epoch, best_score
        return result

    # -- inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, table: TensorTable) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        return predict(self.model, self.tasks, table, device=self.device)

    def evaluate(self, table: TensorTable) -> tuple[dict[str, dict[str, float]], np.ndarray | None]:
        predictions, attention = self.predict(table)
        targets = {k: v.cpu().numpy() for k, v in table.targets.items()}
        return {t.name: t.kind.metrics(t, targets[t.name], predictions[t.name]) for t in self.tasks}, attention


@torch.no_grad()
def predict(
    model: MultiTaskModel, tasks: list[TaskSpec], table: TensorTable, *, device: torch.device | str = "cpu",
    batch_size: int = EVAL_BATCH,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Each task's predictions (probabilities, class probabilities or values in original units) and the
    attention matrix (eval mode: it does not depend on the batch), for a whole table."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {t.name: [] for t in tasks}
    attention = None
    for batch in iter_batches(table.to(device), batch_size=batch_size):
        inputs, _ = split_targets(batch)
        output = model(inputs)
        for t in tasks:
            parts[t.name].append(t.kind.predict(t, output.logits[t.name]).float().cpu())
        if output.attention is not None and attention is None:
            attention = output.attention.cpu().numpy()
    model.train(was_training)
    return {name: torch.cat(p).numpy() if p else np.empty(0) for name, p in parts.items()}, attention
