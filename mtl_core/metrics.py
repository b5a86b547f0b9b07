"""Per-task metrics (scikit-learn), defined so that a degenerate split gives NaN rather than an exception."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Calibration error of the positive-class probability, with equal-width bins on p: the sum over bins of
    |observed positive rate - mean p|, weighted by bin size. (Top-label ECE, binned on max(p, 1 - p), is the
    other common definition and usually gives a smaller number.)"""
    if len(y) == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    pos = np.bincount(which, weights=y, minlength=bins)
    conf = np.bincount(which, weights=p, minlength=bins)
    nonzero = counts > 0
    return float(np.sum(np.abs(pos[nonzero] - conf[nonzero])) / len(y))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    if len(y) == 0:
        return {k: math.nan for k in ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss", "ece")}
    both = len(np.unique(y)) == 2
    pred = (p >= threshold).astype(int)
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else math.nan,
        "pr_auc": float(skm.average_precision_score(y, p)) if both else math.nan,
        "accuracy": float(skm.accuracy_score(y, pred)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "ece": expected_calibration_error(y.astype(float), p),
    }


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    if len(y) == 0:
        return {k: math.nan for k in ("accuracy", "macro_f1", "log_loss")}
    pred = proba.argmax(axis=1)
    proba = np.clip(proba, 1e-7, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=np.unique(y), zero_division=0)),
        "log_loss": float(skm.log_loss(y, proba, labels=list(range(n_classes)))),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if len(y) == 0:
        return {k: math.nan for k in ("rmse", "mae", "r2")}
    return {
        "rmse": float(math.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else math.nan,
    }
