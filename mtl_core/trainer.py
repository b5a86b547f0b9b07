"""The training loop: in-memory batches, AdamW, clipping, a cosine schedule, early stopping on the
validation mean of each task's primary metric, and the best weights restored at the end.

Usage (single process)::

    trainer = Trainer(model=model, tasks=specs, config=train_cfg)
    result = trainer.fit(train_table, val_table)
    predictions = trainer.predict(test_table)

Data-parallel (the same code, started by torchrun after ``mtl_core.distributed.init_from_env()``): every
rank holds the whole table in memory and takes its slice of each global batch (``config.batch_size`` is the
global batch); per-task losses are masked means over the global batch's labelled rows; after the weighting's
backward every gradient is averaged over ranks, so each step is the single-process step on the same global
batch (docs/distributed.md). Rank 0 alone evaluates the full validation set, calls the callbacks, shows the
progress bar and writes the checkpoint; the others receive its epoch record, so all ranks stop together.

With ``config.checkpoint_dir`` set, a checkpoint is written after every epoch and ``config.resume == "auto"``
continues from it (after a crash, or when torchrun restarts the group).
"""

from __future__ import annotations

import copy
import math
import random
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mtl_core import distributed as D
from mtl_core.architectures import MultiTaskModel
from mtl_core.checkpoint import fingerprint, load_checkpoint, save_checkpoint
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


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one rank's randomness (dropout) in one epoch. Reseeding per epoch makes a resumed run
    replay exactly the epochs an uninterrupted run would, whatever happened before the restart."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % (2**32)


def _generators(module: torch.nn.Module) -> dict[str, torch.Generator]:
    """A strategy's own ``torch.Generator`` attributes (PCGrad's shuffle): not in ``state_dict``, but part of
    what a checkpoint must restore for an exact resume."""
    return {k: v for k, v in vars(module).items() if isinstance(v, torch.Generator)}


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
        callbacks: called with each epoch's record (logging), on rank 0 only; after a resume they are first
            called with the restored epochs' records, so a logger that starts afresh still shows the whole run.
        progress: show a progress bar over epochs (rank 0 only).
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
            config.weighting, task_names=[t.name for t in tasks], static_weights=[t.weight for t in tasks],
            seed=config.seed,
        )).to(self.device)
        self.callbacks = list(callbacks or [])
        self.progress = progress
        # The weighting's own parameters (uncertainty's log-variances, GradNorm's weights) are not decayed:
        # neither paper regularises them towards zero.
        groups = [{"params": list(self.model.parameters())},
                  {"params": list(self.weighting.parameters()), "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.learning_rate,
                                           weight_decay=config.weight_decay)

    # -- training -----------------------------------------------------------------------------------
    def task_losses(self, output, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """[T] masked mean loss per task over the global batch (this rank's rows alone in one process)."""
        terms = [t.kind.loss_terms(t, output.logits[t.name], targets[t.name]) for t in self.tasks]
        sums = torch.stack([total for total, _ in terms])
        counts = torch.stack([count for _, count in terms])
        return D.global_masked_mean(sums, counts)

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in list(self.model.parameters()) + list(self.weighting.parameters()) if p.requires_grad]

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
        trainable = self._trainable()
        perm = epoch_permutation(len(table), seed=self.config.seed, epoch=epoch)
        batches_iter = iter_batches(
            table, batch_size=self.config.batch_size, permutation=perm, rank=D.rank(), world_size=D.world_size()
        )
        for batch in batches_iter:
            inputs, targets = split_targets(batch)
            output = self.model(inputs)
            losses = self.task_losses(output, targets)
            extra = self.model.extra_loss(output, losses)
            self.optimizer.zero_grad(set_to_none=True)
            weights = self.weighting.backward(losses, extra, shared_parameters=shared)
            # Explicit all-reduce instead of DDP's reducer: it also covers gradients a strategy assembled with
            # torch.autograd.grad (PCGrad, GradNorm), which DDP's hooks never see. No-op in one process.
            D.average_parameter_gradients(trainable)
            if self.config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            scheduler.step()
            loss_sum += losses.detach().cpu()
            batches += 1
        mean = loss_sum / max(1, batches)
        self.weighting.on_epoch_end(epoch, mean)
        return {t.name: float(v) for t, v in zip(self.tasks, mean, strict=True)}, weights

    def fit(self, train: TensorTable, val: TensorTable) -> TrainResult:
        """Train for ``config.epochs`` (or until early stopping) and restore the best epoch's weights.

        Raises:
            mtl_core.checkpoint.CheckpointError: ``resume: auto`` found a checkpoint that cannot be loaded.
        """
        seed_everything(self.config.seed)
        main = D.is_main_process()
        # The seeds already agree; broadcasting makes identical starting weights a fact, not an assumption.
        D.broadcast_module_state(self.model, self.weighting)
        train, val = train.to(self.device), val.to(self.device)
        steps = math.ceil(len(train) / self.config.batch_size)
        scheduler = self._scheduler(steps)
        best_state, best_score, best_epoch, stale = None, -math.inf, -1, 0
        result = TrainResult(best_epoch=-1, best_score=math.nan)
        start_epoch = 0
        ckpt_dir = self.config.checkpoint_dir
        run_id = None
        if ckpt_dir:
            run_id = fingerprint(model=self.model, train_config=self.config.model_dump(mode="json"),
                                 tables=[train.tensors, val.tensors])
            state = load_checkpoint(ckpt_dir, map_location=self.device) if self.config.resume == "auto" else None
            if state is not None and state.get("fingerprint") != run_id:
                if main:
                    print(f"train: ignoring the checkpoint in {ckpt_dir}: it was trained on other data or "
                          "settings; starting from epoch 0", file=sys.stderr, flush=True)
                state = None
            if state is not None:
                self._restore(state, scheduler)
                best_state = state["best_model"]
                es = state["early_stopping"]
                best_score, best_epoch, stale = es["best_score"], es["best_epoch"], es["stale"]
                result.stopped_early = es["stopped_early"]
                result.history = [EpochRecord(**r) for r in state["history"]]
                start_epoch = state["epoch"] + 1
                if main:
                    print(f"train: resuming from the checkpoint of epoch {state['epoch']} in {ckpt_dir} "
                          f"(world size {D.world_size()}, was {state['world_size']})", file=sys.stderr, flush=True)
                    for record in result.history:
                        for callback in self.callbacks:
                            callback(record)
        epochs = range(start_epoch, self.config.epochs) if not result.stopped_early else range(0)
        bar = tqdm(epochs, desc="train", unit="epoch", disable=not (self.progress and main))
        for epoch in bar:
            seed_everything(epoch_seed(self.config.seed, epoch, D.rank()))
            train_loss, weights = self.train_epoch(train, epoch, scheduler)
            record = None
            if main:  # the full validation set, once, on rank 0; the others wait for its record
                val_metrics, attention = self.evaluate(val)
                record = EpochRecord(
                    epoch=epoch, train_loss=train_loss, val_metrics=val_metrics,
                    val_score=validation_score(self.tasks, val_metrics),
                    learning_rate=self.optimizer.param_groups[0]["lr"], task_weights=weights,
                    attention=attention.tolist() if attention is not None else None,
                )
            record = D.broadcast_object(record)
            result.history.append(record)
            if main:
                for callback in self.callbacks:
                    callback(record)
            bar.set_postfix(loss=f"{sum(train_loss.values()):.4f}", val=f"{record.val_score:.4f}")
            # A NaN score (e.g. a validation split with one class) never beats a number, but the first epoch
            # is always kept, so `best_epoch` always names the weights the model ends with.
            if best_epoch < 0 or record.val_score > best_score:
                best_state = copy.deepcopy(self.model.state_dict())
                best_score, best_epoch, stale = record.val_score, epoch, 0
            else:
                stale += 1
                if stale >= self.config.patience:
                    result.stopped_early = True
            if ckpt_dir and main:
                save_checkpoint(ckpt_dir, self._checkpoint_state(
                    run_id, epoch, scheduler, best_state, result,
                    {"best_score": best_score, "best_epoch": best_epoch, "stale": stale,
                     "stopped_early": result.stopped_early},
                ))
            if result.stopped_early:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        result.best_epoch, result.best_score = best_epoch, best_score
        return result

    def _checkpoint_state(self, run_id, epoch, scheduler, best_state, result, early_stopping) -> dict:
        """Everything a resume needs, as tensors and plain containers only (``weights_only`` loadable)."""
        np_state = np.random.get_state()
        return {
            "fingerprint": run_id,
            "epoch": epoch,
            "world_size": D.world_size(),
            "model": self.model.state_dict(),
            "best_model": best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "weighting": self.weighting.state_dict(),
            "generators": {k: g.get_state() for k, g in _generators(self.weighting).items()},
            "early_stopping": early_stopping,
            "history": [asdict(r) for r in result.history],
            # Rank 0's streams at the end of the epoch, for the record; each epoch reseeds from
            # epoch_seed(seed, epoch, rank), which is what makes the resumed epochs identical.
            "rng": {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
                    "numpy_pos": int(np_state[2]), "python": list(random.getstate()[1])},
        }

    def _restore(self, state: dict, scheduler) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.weighting.load_state_dict(state["weighting"])
        for name, generator in _generators(self.weighting).items():
            if name in state["generators"]:
                generator.set_state(state["generators"][name])
        torch.set_rng_state(state["rng"]["torch"])

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
