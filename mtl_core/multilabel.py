"""Multi-label targets as several binary tasks.

A multi-label column holds zero or more labels per row, joined by a separator (``"billing|refund"``). Each
label becomes its own binary task on an indicator column, so every binary loss, metric, threshold and gate
applies unchanged, and task attention can learn how the labels relate:

    tasks = expand_multilabel("topic", MultiLabelConfig(column="topics", labels=["billing", "refund"]))
    frame = add_indicator_columns(frame, MultiLabelConfig(...))   # adds topics__billing, topics__refund

A row whose source cell is empty or missing has no label for any of the derived tasks (masked), rather than
"none of the labels"; use an explicit ``none_value`` (e.g. ``"none"``) for rows that truly have no label.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from mtl_core.config import BINARY_METRICS, StrictModel, TaskConfig

_SAFE = re.compile(r"[^0-9A-Za-z_-]+")


class MultiLabelConfig(StrictModel):
    """One multi-label target.

    Attributes:
        column: source column holding the separator-joined labels.
        labels: the label vocabulary; each becomes a binary task.
        separator: what joins several labels in one cell.
        none_value: a cell value meaning "labelled, with no label" (every indicator 0); None: no such value.
        primary_metric: a binary metric, shared by the derived tasks.
        weight: static loss multiplier of each derived task.
    """

    column: str
    labels: list[str] = Field(min_length=1)
    separator: str = Field("|", min_length=1)
    none_value: str | None = None
    primary_metric: str = "roc_auc"
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> MultiLabelConfig:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("`labels` has duplicates")
        bad = [label for label in self.labels if self.separator in label or not label.strip()]
        if bad:
            raise ValueError(f"labels must be non-empty and must not contain the separator {self.separator!r}: {bad}")
        safe = [_SAFE.sub("_", label) for label in self.labels]
        if len(set(safe)) != len(safe):
            raise ValueError(f"labels collide once made safe for task names: {self.labels} -> {safe}")
        if self.primary_metric not in BINARY_METRICS:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not a binary metric; allowed: "
                             f"{', '.join(BINARY_METRICS)}")
        return self


def _suffix(label: str) -> str:
    return _SAFE.sub("_", label)


def indicator_column(cfg: MultiLabelConfig, label: str) -> str:
    """Name of the derived 0/1 column for ``label`` (``<column>__<label>``)."""
    return f"{cfg.column}__{_suffix(label)}"


def expand_multilabel(name: str, cfg: MultiLabelConfig) -> dict[str, TaskConfig]:
    """One binary ``TaskConfig`` per label, named ``<name>__<label>``, in vocabulary order."""
    return {
        f"{name}__{_suffix(label)}": TaskConfig(
            column=indicator_column(cfg, label), type="binary", positive=["1"], negative=["0"],
            primary_metric=cfg.primary_metric, weight=cfg.weight,
        )
        for label in cfg.labels
    }


def add_indicator_columns(frame: pd.DataFrame, cfg: MultiLabelConfig, *, strict: bool = True) -> pd.DataFrame:
    """A copy of ``frame`` with one string column per label: "1", "0", or missing where the source is.

    Args:
        frame: a table with ``cfg.column``.
        cfg: the multi-label target.
        strict: raise on labels outside the vocabulary (otherwise they are ignored).

    Raises:
        ValueError: ``cfg.column`` is absent, or (``strict``) a cell holds a label outside ``cfg.labels``.
    """
    if cfg.column not in frame.columns:
        raise ValueError(f"multi-label column {cfg.column!r} not in the table; columns: {list(frame.columns)}")
    raw = frame[cfg.column].astype("string").str.strip()
    missing = (raw.isna() | (raw == "")).to_numpy(dtype=bool)
    cells = raw.fillna("").to_numpy(dtype=object)
    sets = [
        set() if (cfg.none_value is not None and cell == cfg.none_value)
        else {part.strip() for part in cell.split(cfg.separator) if part.strip()}
        for cell in cells
    ]
    if strict:
        vocabulary = set(cfg.labels)
        unknown = sorted({label for s in sets for label in s} - vocabulary)
        if unknown:
            raise ValueError(f"column {cfg.column!r}: labels outside `labels`: {unknown[:10]}")
    out = frame.copy()
    for label in cfg.labels:
        values = np.array(["1" if label in s else "0" for s in sets], dtype=object)
        values[missing] = None
        out[indicator_column(cfg, label)] = pd.array(values, dtype="string")
    return out
