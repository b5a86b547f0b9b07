"""A torchrun worker for the distributed tests: trains the real Trainer on small synthetic data.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.ddp_worker '<json config>'

The config (JSON) names the output directory and the variants to train; rank 0 writes, per variant,
``<name>.safetensors`` (the final parameters and buffers) and ``<name>.json`` (history and test metrics).
``fail_rank`` makes that rank raise (to test failure handling); everything else is the product's code.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from mtl_core import distributed as D
from mtl_core.architectures import build_model
from mtl_core.config import ModelConfig, TrainConfig
from mtl_core.data import TensorTable
from mtl_core.preprocessing import FeatureSchema
from mtl_core.tasks import TaskSpec
from mtl_core.trainer import Trainer, seed_everything

SCHEMA = FeatureSchema(numeric=[f"n{i}" for i in range(6)], categorical=["c0", "c1"], cardinalities=[6, 9])
TASKS = [
    TaskSpec(name="bin", type="binary", column="bin", output_dim=1, classes=["negative", "positive"],
             positive=["1"], primary_metric="roc_auc"),
    TaskSpec(name="multi", type="multiclass", column="multi", output_dim=4, classes=["a", "b", "c", "d"],
             primary_metric="macro_f1"),
    TaskSpec(name="reg", type="regression", column="reg", output_dim=1, primary_metric="rmse"),
]
# name -> (architecture, weighting)
VARIANTS = {
    "equal": ("shared_bottom", "equal"),
    "pcgrad": ("shared_bottom", "pcgrad"),
    "gradnorm": ("shared_bottom", "gradnorm"),
    "task_attention": ("task_attention", "equal"),
    "task_attention_pcgrad": ("task_attention", "pcgrad"),
}


def synthetic_table(rows: int, seed: int) -> TensorTable:
    """Learnable targets from the inputs, with missing labels (about 20% per task), the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(rows, 6, generator=g)
    x_cat = torch.stack([torch.randint(1, 6, (rows,), generator=g), torch.randint(1, 9, (rows,), generator=g)], 1)
    score = x_num[:, 0] - 0.5 * x_num[:, 1] + 0.3 * (x_cat[:, 0] % 2)
    y_bin = (score + 0.5 * torch.randn(rows, generator=g) > 0).float()
    y_multi = ((x_num[:, 2] > 0).long() * 2 + (x_num[:, 3] + 0.3 * x_num[:, 0] > 0).long())
    y_reg = x_num[:, 4] * 0.8 + x_num[:, 0] * 0.4 + 0.1 * torch.randn(rows, generator=g)
    y_bin[torch.rand(rows, generator=g) < 0.2] = float("nan")
    y_multi[torch.rand(rows, generator=g) < 0.2] = -1
    y_reg[torch.rand(rows, generator=g) < 0.2] = float("nan")
    return TensorTable({"x_num": x_num, "x_cat": x_cat, "y__bin": y_bin, "y__multi": y_multi, "y__reg": y_reg})


def train_variant(name: str, cfg: dict, out: Path) -> None:
    architecture, weighting = VARIANTS[name]
    seed_everything(cfg.get("seed", 0))
    model_cfg = ModelConfig(architecture=architecture, encoder_hidden=cfg.get("hidden", [32, 16]),
                            tower_hidden=[8], representation_dim=8, dropout=cfg.get("dropout", 0.0))
    model = build_model(schema=SCHEMA, tasks=TASKS, config=model_cfg)
    ckpt = cfg.get("checkpoint_dir")
    train_cfg = TrainConfig(
        seed=cfg.get("seed", 0), epochs=cfg.get("epochs", 1), batch_size=cfg.get("batch_size", 64),
        learning_rate=1e-2, weighting=weighting, patience=cfg.get("epochs", 1) + 1, grad_clip=5.0,
        checkpoint_dir=f"{ckpt}/{name}" if ckpt else None, resume=cfg.get("resume", "auto"),
    )
    trainer = Trainer(model=model, tasks=TASKS, config=train_cfg, progress=False)
    train = synthetic_table(cfg.get("rows", 2000), seed=1)
    val = synthetic_table(500, seed=2)
    test = synthetic_table(1000, seed=3)
    result = trainer.fit(train, val)
    if D.is_main_process():
        metrics, _ = trainer.evaluate(test)
        state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
        save_file(state, str(out / f"{name}.safetensors"))
        (out / f"{name}.json").write_text(json.dumps({
            "world_size": D.world_size(), "best_epoch": result.best_epoch, "test": metrics,
            "history": [asdict(r) for r in result.history],
        }))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    D.init_from_env(timeout_s=cfg.get("timeout_s", 60))
    try:
        if cfg.get("fail_rank") is not None and D.rank() == cfg["fail_rank"]:
            time.sleep(1.0)  # let the other ranks enter training and block in a collective first
            raise RuntimeError(f"injected failure on rank {D.rank()}")
        for name in cfg["variants"]:
            train_variant(name, cfg, out)
    finally:
        D.shutdown()


if __name__ == "__main__":
    main()
