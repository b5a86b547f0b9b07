"""Stage train: fit the configured multi-task model on data/features and write the candidate bundle.

    python -m pipelines.launch                                  (what dvc.yaml runs: torchrun when needed)
    torchrun --standalone --nproc-per-node 2 -m pipelines.stages.train          (the same, by hand)
    python -m pipelines.stages.train                                            (one process, no torchrun)

Per-epoch losses, validation metrics and the task-attention matrix are logged with dvclive
(dvclive/), the best epoch's weights are kept, and models/candidate/ receives the model bundle.
Under torchrun every worker trains its shard; rank 0 alone logs, writes files and shows progress.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from dvclive import Live
from mtl_core import distributed as D
from mtl_core.architectures import build_model
from mtl_core.bundle import ModelBundle
from mtl_core.data import TensorTable
from mtl_core.preprocessing import FeaturePreprocessor, FeatureSchema
from mtl_core.tasks import TaskSpec
from mtl_core.trainer import EpochRecord, Trainer, seed_everything
from pipelines.io import CANDIDATE_DIR, DVCLIVE_DIR, FEATURES_DIR, TRAIN_METRICS
from pipelines.lineage import file_md5, git_revision
from pipelines.params import Params
from pipelines.stages._entry import StageError, console, stage_main


def load_features(root: Path) -> tuple[list[TaskSpec], FeatureSchema, dict[str, TensorTable]]:
    meta = json.loads((root / FEATURES_DIR / "meta.json").read_text())
    tasks = [TaskSpec(**t) for t in meta["tasks"]]
    schema = FeatureSchema(**meta["feature_schema"])
    tables = {s: TensorTable.load(root / FEATURES_DIR / f"{s}.safetensors") for s in ("train", "val")}
    return tasks, schema, tables


class LiveLogger:
    """Trainer callback: one dvclive step per epoch (loss and metrics per task, the attention matrix)."""

    def __init__(self, live: Live, tasks: list[TaskSpec]) -> None:
        self.live, self.names = live, [t.name for t in tasks]

    def __call__(self, record: EpochRecord) -> None:
        for task, loss in record.train_loss.items():
            self.live.log_metric(f"train/loss/{task}", loss)
        for task, metrics in record.val_metrics.items():
            for metric, value in metrics.items():
                self.live.log_metric(f"val/{task}/{metric}", value)
        self.live.log_metric("val/score", record.val_score)
        self.live.log_metric("learning_rate", record.learning_rate)
        if record.attention is not None:
            for i, a in enumerate(self.names):
                for j, b in enumerate(self.names):
                    self.live.log_metric(f"attention/{a}/{b}", record.attention[i][j])
        self.live.next_step()


def thread_budget(processes: int, requested: int | None) -> int:
    """CPU threads per worker: the configured budget, else this machine's cores shared among its workers
    (oversubscribed threads make every worker slower)."""
    if requested:
        return requested
    return max(1, (os.cpu_count() or 1) // max(1, processes))


def warm_start(model: torch.nn.Module, bundle_dir: Path) -> None:
    """Start from a bundle's weights (fine-tuning).

    Raises:
        StageError: the bundle does not load, or its weights do not fit this model (schema changed).
    """
    try:
        source = ModelBundle.load(bundle_dir)
        model.load_state_dict(source.model.state_dict())
    except (ValueError, RuntimeError) as exc:
        raise StageError(f"train.init_from {bundle_dir}: cannot warm-start from it: {exc}") from None
    console.print(f"train: warm start from {bundle_dir}")


def run(params: Params, root: Path) -> ModelBundle | None:
    """Train; on rank 0 write the bundle and metrics and return the bundle (None on the other ranks)."""
    D.init_from_env(timeout_s=params.train.collective_timeout_s)
    try:
        return _train(params, root)
    finally:
        D.shutdown()


def _train(params: Params, root: Path) -> ModelBundle | None:
    seed_everything(params.train.seed)
    local_workers = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(thread_budget(local_workers, params.train.threads_per_process))
    main = D.is_main_process()
    tasks, schema, tables = load_features(root)
    model = build_model(schema=schema, tasks=tasks, config=params.model)
    if params.train.init_from:
        warm_start(model, Path(params.train.init_from))
    train_cfg = params.train
    if train_cfg.checkpoint_dir and not Path(train_cfg.checkpoint_dir).is_absolute():
        train_cfg = train_cfg.model_copy(update={"checkpoint_dir": str(root / train_cfg.checkpoint_dir)})
    live = Live(str(root / DVCLIVE_DIR), dvcyaml=False, save_dvc_exp=False, report=None) if main else None
    with live if live is not None else contextlib.nullcontext():
        trainer = Trainer(model=model, tasks=tasks, config=train_cfg, device=D.local_device(),
                          callbacks=[LiveLogger(live, tasks)] if live is not None else [], progress=main)
        result = trainer.fit(tables["train"], tables["val"])
    if not main:
        return None
    model = trainer.model.cpu()
    best = result.history[result.best_epoch]
    preprocessor = FeaturePreprocessor.load(root / FEATURES_DIR / "preprocessor.skops", params.features)
    lineage = {
        "git_revision": git_revision(root),
        "data": {str(p): file_md5(root / p) for p in [params.data.train, params.data.test] if p},
        "params": params.model_dump(mode="json", by_alias=True),
        "best_epoch": result.best_epoch,
        "val_metrics": best.val_metrics,
    }
    bundle = ModelBundle(model, tasks, schema, params.model, params.features, preprocessor, lineage)
    bundle.save(root / CANDIDATE_DIR)
    metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history), "val_score": result.best_score,
               "stopped_early": result.stopped_early, "val": best.val_metrics}
    (root / TRAIN_METRICS).parent.mkdir(parents=True, exist_ok=True)
    (root / TRAIN_METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    console.print(f"train: best epoch {result.best_epoch} (val score {result.best_score:.4f}) -> {CANDIDATE_DIR}/")
    return bundle


@record  # under torchrun: a worker's traceback goes into the job's error summary
def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
