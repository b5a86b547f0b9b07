"""Stage evaluate: score the candidate bundle on the test split; per-task metrics and plots.

    python -m pipelines.stages.evaluate

Writes metrics/test.json (DVC metrics), plots/ (ROC, precision-recall, calibration, confusion per
task; the task-attention heatmap) and the test predictions (reports/predictions/test.parquet, the same
columns `mtl predict` writes, so the two can be compared row for row).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from mtl_core.bundle import ModelBundle, prediction_columns
from mtl_core.data import TensorTable
from mtl_core.tasks import MISSING_CLASS
from mtl_core.trainer import predict
from pipelines import plots
from pipelines.io import ATTENTION, CANDIDATE_DIR, FEATURES_DIR, PLOTS_DIR, PREDICTIONS, TEST_METRICS
from pipelines.params import Params
from pipelines.stages._entry import console, stage_main


def evaluate_bundle(bundle: ModelBundle, table: TensorTable) -> tuple[dict, dict[str, np.ndarray], np.ndarray | None]:
    predictions, attention = predict(bundle.model, bundle.tasks, table)
    targets = {k: v.numpy() for k, v in table.targets.items()}
    metrics = {t.name: t.kind.metrics(t, targets[t.name], predictions[t.name]) for t in bundle.tasks}
    return metrics, predictions, attention


def run(params: Params, root: Path) -> dict:
    bundle = ModelBundle.load(root / CANDIDATE_DIR)
    table = TensorTable.load(root / FEATURES_DIR / "test.safetensors")
    metrics, predictions, attention = evaluate_bundle(bundle, table)
    targets = {k: v.numpy() for k, v in table.targets.items()}
    out = root / PLOTS_DIR
    for t in bundle.tasks:
        y, p = targets[t.name], predictions[t.name]
        if t.type == "binary":
            keep = ~np.isnan(y)
            plots.binary_curves(out, t.name, y[keep].astype(int), p[keep], params.evaluate.calibration_bins)
            classes = np.array(["negative", "positive"], dtype=object)
            plots.confusion_rows(out, t.name, list(classes[y[keep].astype(int)]),
                                 list(classes[(p[keep] >= 0.5).astype(int)]))
        elif t.type == "multiclass":
            keep = y != MISSING_CLASS
            names = np.asarray(t.classes, dtype=object)
            plots.confusion_rows(out, t.name, list(names[y[keep]]), list(names[p[keep].argmax(axis=1)]))
    names = [t.name for t in bundle.tasks]
    # dvc.yaml declares the heatmap for every architecture; one without task attention gets an explicit
    # picture of "no mixing" (the identity) rather than a missing output.
    title = "Task attention W" if attention is not None else f"{bundle.model_config.architecture}: no task attention"
    plots.attention_heatmap(out / "attention.png", attention if attention is not None else np.eye(len(names)),
                            names, title=title)
    (root / ATTENTION).parent.mkdir(parents=True, exist_ok=True)
    (root / ATTENTION).write_text(json.dumps(
        {"tasks": names, "attention": attention.tolist() if attention is not None else None}, indent=2) + "\n")
    (root / TEST_METRICS).parent.mkdir(parents=True, exist_ok=True)
    (root / TEST_METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    (root / PREDICTIONS).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(prediction_columns(bundle.tasks, predictions)).to_parquet(root / PREDICTIONS, index=False)
    table_view = Table("task", "metric", "value", title=f"Test metrics ({len(table)} rows)")
    for task, values in metrics.items():
        for metric, value in values.items():
            table_view.add_row(task, metric, f"{value:.4f}")
    console.print(table_view)
    return metrics


def main() -> None:
    stage_main(run)


if __name__ == "__main__":
    main()
