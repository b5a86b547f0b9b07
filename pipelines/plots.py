"""Plot data for `dvc plots show` (JSON rows) and the pictures people look at (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows) + "\n")


def _thin(a: np.ndarray, b: np.ndarray, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    if len(a) <= max_points:
        return a, b
    keep = np.unique(np.linspace(0, len(a) - 1, max_points).astype(int))
    return a[keep], b[keep]


def binary_curves(out: Path, task: str, y: np.ndarray, p: np.ndarray, bins: int) -> None:
    if len(np.unique(y)) < 2:
        return
    fpr, tpr, _ = roc_curve(y, p)
    fpr, tpr = _thin(fpr, tpr)
    _write_rows(out / "roc" / f"{task}.json", [{"fpr": float(a), "tpr": float(b)} for a, b in zip(fpr, tpr, strict=True)])
    precision, recall, _ = precision_recall_curve(y, p)
    recall, precision = _thin(recall, precision)
    _write_rows(out / "precision_recall" / f"{task}.json",
                [{"recall": float(a), "precision": float(b)} for a, b in zip(recall, precision, strict=True)])
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    _write_rows(out / "calibration" / f"{task}.json",
                [{"predicted": float(a), "observed": float(b)} for a, b in zip(mean_pred, frac_pos, strict=True)])


def confusion_rows(out: Path, task: str, actual: list[str], predicted: list[str]) -> None:
    _write_rows(out / "confusion" / f"{task}.json",
                [{"actual": a, "predicted": b} for a, b in zip(actual, predicted, strict=True)])


def attention_heatmap(path: Path, attention: np.ndarray, names: list[str], title: str = "Task attention W") -> None:
    """Row i: how much task i draws on each task j (rows sum to 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(names), 1.2 + 1.0 * len(names)))
    im = ax.imshow(attention, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("attends to (j)")
    ax.set_ylabel("task (i)")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{attention[i, j]:.2f}", ha="center", va="center",
                    color="black" if attention[i, j] > 0.5 else "white")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
