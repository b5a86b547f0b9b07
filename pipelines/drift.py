"""Drift between the reference profile and a new batch: the population stability index (PSI) per column.

PSI = sum over bins of (batch share - reference share) * ln(batch share / reference share). Numeric columns
use the profile's quantile bins (fixed when the profile was written), categorical columns and labels one bin
per reference category plus one for unseen values. Shares are floored at 1e-4 so an empty bin scores a large
but finite value. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a significant shift.

Thresholds come from ``drift`` in params.yaml. The report (JSON) says, per column, the statistic, its
threshold and whether it drifted, and at the top which features and labels drifted, for the retraining flow
to act on (retrain on feature drift; a label-distribution jump rejects the batch when
``drift.reject_on_label_drift``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.params import Params
from pipelines.profile import bin_fractions

EPSILON = 1e-4
UNSEEN = "<unseen>"


@dataclass
class ColumnDrift:
    column: str
    role: str  # feature | label
    kind: str  # numeric | categorical
    statistic: str
    value: float | None
    threshold: float
    drifted: bool
    reference: dict[str, float] = field(default_factory=dict)
    batch: dict[str, float] = field(default_factory=dict)


@dataclass
class DriftReport:
    file: str
    rows: int
    columns: list[ColumnDrift]

    @property
    def drifted_features(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted and c.role == "feature"]

    @property
    def drifted_labels(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted and c.role == "label"]

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_features or self.drifted_labels)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "statistic": "psi", "drifted": self.drifted,
                "drifted_features": self.drifted_features, "drifted_labels": self.drifted_labels,
                "columns": [asdict(c) for c in self.columns]}

    def messages(self, role: str | None = None) -> list[str]:
        """One line per drifted column (of ``role``, feature or label, when given), with the statistic."""
        return [f"{self.file}: column {c.column!r}: {c.role} distribution drifted: PSI {c.value:.3f} > "
                f"threshold {c.threshold:g}" for c in self.columns if c.drifted and role in (None, c.role)]


def psi(reference: np.ndarray, batch: np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype="float64"), EPSILON, None)
    new = np.clip(np.asarray(batch, dtype="float64"), EPSILON, None)
    return float(np.sum((new - ref) * np.log(new / ref)))


def _categorical_shares(values: pd.Series, frequencies: dict[str, float]) -> tuple[dict, dict]:
    observed = values.dropna().astype("string").value_counts(normalize=True)
    keys = list(frequencies) + [UNSEEN]
    ref = {k: float(frequencies.get(k, 0.0)) for k in keys}
    new = {k: float(observed.get(k, 0.0)) for k in frequencies}
    new[UNSEEN] = float(observed[[k for k in observed.index if k not in frequencies]].sum())
    return ref, new


def drift_report(frame: pd.DataFrame, profile: dict[str, Any], params: Params, *, file: str) -> DriftReport:
    """PSI of every profiled feature and label column present in ``frame``.

    Args:
        frame: the batch, as ``pipelines.io.read_table`` reads it.
        profile: the reference profile (``pipelines.profile.load_profile``).
        params: the project parameters (``drift`` thresholds).
        file: the batch's file name, for the report.

    Returns:
        The report; columns absent from the batch are skipped (the contract reports them).
    """
    cfg = params.drift
    out = []
    for column, entry in profile["columns"].items():
        if column not in frame.columns:
            continue
        role = entry.get("role", "feature")
        threshold = cfg.thresholds.get(column, cfg.label_psi_threshold if role == "label" else cfg.psi_threshold)
        values = frame[column]
        if values.notna().sum() == 0:
            value, ref, new = None, {}, {}
        elif entry["kind"] == "numeric":
            edges = entry["edges"]
            labels = _bin_labels(edges)
            ref = dict(zip(labels, entry["fractions"], strict=True))
            shares = bin_fractions(pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64"), edges)
            new = dict(zip(labels, (float(s) for s in shares), strict=True))
            value = psi(np.array(list(ref.values())), shares)
        else:
            ref, new = _categorical_shares(values, entry.get("frequencies", {}))
            value = psi(np.array(list(ref.values())), np.array(list(new.values())))
        out.append(ColumnDrift(
            column=column, role=role, kind=entry["kind"], statistic="psi",
            value=None if value is None else round(value, 6), threshold=threshold,
            drifted=value is not None and value > threshold,
            reference={k: round(v, 4) for k, v in ref.items()}, batch={k: round(v, 4) for k, v in new.items()},
        ))
    return DriftReport(file=file, rows=len(frame), columns=out)


def _bin_labels(edges: list[float]) -> list[str]:
    bounds = ["-inf"] + [f"{e:g}" for e in edges] + ["inf"]
    return [f"({lo}, {hi}]" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def write_drift_report(report: DriftReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return path
