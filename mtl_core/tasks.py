"""Task types: how a raw label column becomes a target, which loss, which output, which metrics.

A task type is an object with a common interface (``TaskKind``), looked up by name in ``TASK_KINDS``;
nothing else in the library branches on the type's name. Missing labels are NaN (float targets) or -1
(class targets) and are masked out of the loss: a row without a label adds nothing to that task's loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mtl_core import metrics as M
from mtl_core.config import TaskConfig

MISSING_CLASS = -1


@dataclass
class TaskSpec:
    """A task as the model sees it, after fitting on the training labels (JSON-serialisable)."""

    name: str
    type: str
    column: str
    output_dim: int
    classes: list[str] = field(default_factory=list)  # multiclass: index -> name; binary: [negative, positive]
    positive: list[str] = field(default_factory=list)
    mean: float = 0.0  # regression standardisation, so metrics go back to original units
    std: float = 1.0
    primary_metric: str = "roc_auc"
    weight: float = 1.0

    @property
    def kind(self) -> TaskKind:
        return TASK_KINDS[self.type]


class TaskKind(Protocol):
    """What each task type provides."""

    def fit(self, name: str, cfg: TaskConfig, raw: pd.Series) -> TaskSpec: ...
    def encode(self, spec: TaskSpec, raw: pd.Series) -> np.ndarray: ...
    def loss(self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...
    def loss_terms(
        self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
    def predict(self, spec: TaskSpec, logits: torch.Tensor) -> torch.Tensor: ...
    def metrics(self, spec: TaskSpec, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]: ...


def _is_missing(raw: pd.Series) -> np.ndarray:
    as_str = raw.astype("string").str.strip()
    return (raw.isna() | (as_str == "")).to_numpy(dtype=bool)


def _masked_sum_count(per_row: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the loss over labelled rows, number of labelled rows). Kept apart rather than divided here,
    because under DDP the mean's denominator is the labelled count of the global batch, not of one rank's
    share (``mtl_core.distributed.global_masked_mean``)."""
    per_row = torch.where(mask, per_row, torch.zeros_like(per_row))
    return per_row.sum(), mask.sum()


def _masked_mean(per_row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over labelled rows; exactly zero (with a zero gradient) when the batch has none."""
    total, count = _masked_sum_count(per_row, mask)
    return total / count.clamp(min=1)


class _MaskedLoss:
    """``loss`` and ``loss_terms`` from one per-row definition (``_per_row``), so they cannot disagree."""

    def _per_row(
        self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over the rows that have a label (0 when none has)."""
        return _masked_mean(*self._per_row(spec, logits, target))

    def loss_terms(
        self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of the loss over labelled rows, labelled row count): the parts of ``loss``."""
        return _masked_sum_count(*self._per_row(spec, logits, target))


class BinaryKind(_MaskedLoss):
    def fit(self, name: str, cfg: TaskConfig, raw: pd.Series) -> TaskSpec:
        return TaskSpec(
            name=name, type="binary", column=cfg.column, output_dim=1, classes=["negative", "positive"],
            positive=list(cfg.positive or []), primary_metric=cfg.primary_metric or "roc_auc", weight=cfg.weight,
        )

    def encode(self, spec: TaskSpec, raw: pd.Series) -> np.ndarray:
        missing = _is_missing(raw)
        values = raw.astype("string").str.strip().to_numpy(dtype=object, na_value="")
        y = np.isin(values, spec.positive).astype(np.float32)
        y[missing] = np.nan
        return y

    def _per_row(self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor):
        mask = ~torch.isnan(target)
        per_row = F.binary_cross_entropy_with_logits(
            logits.squeeze(-1), torch.nan_to_num(target), reduction="none"
        )
        return per_row, mask

    def predict(self, spec: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.squeeze(-1))

    def metrics(self, spec: TaskSpec, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        keep = ~np.isnan(target)
        return M.binary_metrics(target[keep].astype(int), prediction[keep])


class MulticlassKind(_MaskedLoss):
    def fit(self, name: str, cfg: TaskConfig, raw: pd.Series) -> TaskSpec:
        classes = list(cfg.classes or [])
        return TaskSpec(
            name=name, type="multiclass", column=cfg.column, output_dim=len(classes), classes=classes,
            primary_metric=cfg.primary_metric or "macro_f1", weight=cfg.weight,
        )

    def encode(self, spec: TaskSpec, raw: pd.Series) -> np.ndarray:
        index = {c: i for i, c in enumerate(spec.classes)}
        values = raw.astype("string").str.strip()
        # Unknown labels are rejected by data validation before this point; here they count as missing.
        return values.map(index).fillna(MISSING_CLASS).to_numpy(dtype=np.int64)

    def _per_row(self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor):
        mask = target != MISSING_CLASS
        per_row = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
        return per_row, mask

    def predict(self, spec: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)

    def metrics(self, spec: TaskSpec, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        keep = target != MISSING_CLASS
        return M.multiclass_metrics(target[keep], prediction[keep], n_classes=spec.output_dim)


class RegressionKind(_MaskedLoss):
    def fit(self, name: str, cfg: TaskConfig, raw: pd.Series) -> TaskSpec:
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        mean = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
        std = float(np.nanstd(values)) if np.isfinite(values).any() else 1.0
        return TaskSpec(
            name=name, type="regression", column=cfg.column, output_dim=1, mean=mean, std=std or 1.0,
            primary_metric=cfg.primary_metric or "rmse", weight=cfg.weight,
        )

    def encode(self, spec: TaskSpec, raw: pd.Series) -> np.ndarray:
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        return ((values - spec.mean) / spec.std).astype(np.float32)

    def _per_row(self, spec: TaskSpec, logits: torch.Tensor, target: torch.Tensor):
        mask = ~torch.isnan(target)
        per_row = (logits.squeeze(-1) - torch.nan_to_num(target)) ** 2
        return per_row, mask

    def predict(self, spec: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1) * spec.std + spec.mean  # back to original units

    def metrics(self, spec: TaskSpec, target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        keep = ~np.isnan(target)
        return M.regression_metrics(target[keep] * spec.std + spec.mean, prediction[keep])


TASK_KINDS: dict[str, TaskKind] = {
    "binary": BinaryKind(),
    "multiclass": MulticlassKind(),
    "regression": RegressionKind(),
}


def fit_tasks(tasks: dict[str, TaskConfig], frame: pd.DataFrame) -> list[TaskSpec]:
    """Build the task specs from the training labels (regression statistics come from this split only)."""
    return [TASK_KINDS[cfg.type].fit(name, cfg, frame[cfg.column]) for name, cfg in tasks.items()]


def encode_targets(specs: list[TaskSpec], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {s.name: s.kind.encode(s, frame[s.column]) for s in specs}
