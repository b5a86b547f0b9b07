"""The one typed loader of ``params.yaml``.

Every section is a pydantic model that forbids unknown keys; a bad key or value fails at once with its
path, for example ``params.yaml: tasks.income.type: Input should be 'binary', 'multiclass' or 'regression'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from mtl_core.config import (
    BINARY_METRICS,
    LOWER_IS_BETTER,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    FeaturesConfig,
    ModelConfig,
    StrictModel,
    TaskConfig,
    TrainConfig,
)


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or has a bad key or value (the message names each path)."""


class CsvOptions(StrictModel):
    header: bool = True
    columns: list[str] | None = Field(None, description="column names when the file has no header row")
    sep: str = ","
    na_values: list[str] = Field(default_factory=list)
    comment: str | None = None
    skipinitialspace: bool = False

    @model_validator(mode="after")
    def _check(self) -> CsvOptions:
        if not self.header and not self.columns:
            raise ValueError("`columns` is required when `header: false`")
        if self.comment is not None and len(self.comment) != 1:
            raise ValueError("`comment` must be a single character")
        return self


class DataConfig(StrictModel):
    train: Path
    test: Path | None = Field(None, description="held-out test file; or use split_column")
    split_column: str | None = Field(None, description="column with train/val/test per row (instead of files)")
    split_values: dict[str, Literal["train", "val", "test"]] = Field(
        default_factory=dict, description="extra split_column values and the split each means (oos_train: train)"
    )
    csv: CsvOptions = Field(default_factory=CsvOptions)
    strip_suffix: dict[str, str] = Field(default_factory=dict, description="column -> suffix removed from values")
    subsample: int | None = Field(None, ge=10, description="cap rows per split (smoke tests)")
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    split_seed: int = 42
    stratify: str | None = Field(None, description="task whose label stratifies the validation split")
    preprocessor_from: Path | None = Field(
        None, description="model bundle whose fitted preprocessing (and task encodings) to reuse instead of fitting "
        "on the training split: fine-tuning must see inputs encoded as the model it starts from saw them"
    )
    batches: Path | None = Field(
        None, description="folder of accepted, DVC-tracked batches (pipelines/datasets.py); their rows are "
        "appended to the training file before the validation split. None or an empty folder: the training file alone"
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.test is None and self.split_column is None:
            raise ValueError("give either `test` (a file) or `split_column`")
        return self


class ValidateConfig(StrictModel):
    min_rows: int = Field(1, ge=1)
    max_null_fraction: float = Field(0.1, ge=0, le=1, description="default limit for every input column")
    null_fraction: dict[str, float] = Field(default_factory=dict, description="per-column override")
    numeric_ranges: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="column -> [low, high]; overrides the range the reference profile gives")
    unexpected_examples: int = Field(5, ge=0, le=100)
    max_rows: int | None = Field(None, ge=1, description="upper bound on rows per file (None: no bound)")
    max_duplicate_fraction: float = Field(0.01, ge=0, le=1, description="rows in duplicate groups, all copies counted")
    max_unseen_category_fraction: float = Field(
        0.01, ge=0, le=1, description="tolerated share of categorical values absent from the reference profile")
    range_margin: float = Field(
        0.5, ge=0, description="profile-derived numeric ranges are widened by this fraction of their span each side")
    strict_columns: bool = Field(False, description="an unexpected extra column fails validation (else a warning)")
    profile: Path | None = Field(None, description="reference profile written by `mtl profile` (under version control)")
    expectations: Path | None = Field(
        None, description="extra Great Expectations expectations (YAML/JSON list of {type, kwargs}), merged in")


class DriftConfig(StrictModel):
    """Population stability index (PSI) per feature and label, between the reference profile and a batch."""

    bins: int = Field(10, ge=2, le=100, description="quantile bins for numeric columns (fixed at profile time)")
    psi_threshold: float = Field(0.2, gt=0, description="default PSI above which a feature has drifted")
    label_psi_threshold: float = Field(0.2, gt=0, description="PSI above which a label has drifted")
    thresholds: dict[str, float] = Field(default_factory=dict, description="column -> PSI threshold override")
    reject_on_label_drift: bool = Field(
        True, description="a batch whose label distribution drifted is rejected (quarantined); feature drift is "
        "reported for the retraining flow to act on, never a rejection")


class EvaluateConfig(StrictModel):
    calibration_bins: int = Field(10, ge=2, le=100)


class ChampionRules(StrictModel):
    """Challenger versus the production model (the champion), both scored on the same test rows."""

    tolerance: float = Field(0.01, ge=0, description="no task's primary metric may be worse than the champion's "
                             "by more than this")
    tolerances: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="task -> metric -> tolerance; adds metrics to compare or overrides")
    min_improvement: float | None = Field(
        None, ge=0, description="when set, at least one compared metric must beat the champion by this margin")


class GateConfig(StrictModel):
    """``thresholds[task][metric]`` is a lower bound for higher-is-better metrics, an upper bound otherwise."""

    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    champion: ChampionRules = Field(default_factory=ChampionRules)
    require_valid_data: bool = Field(True, description="the data-validation summary must report success")


class RegistryConfig(StrictModel):
    path: Path = Field(Path("registry"), description="model registry directory (relative to the project root)")


class RetrainConfig(StrictModel):
    """Scheduled re-fine-tuning (pipelines/retrain.py)."""

    schedule: str = Field("0 3 * * *", description="cron schedule of `mtl serve` (minute hour day month weekday)")
    epochs: int = Field(3, ge=1, description="fine-tuning epochs from the production weights")
    learning_rate: float = Field(5e-4, gt=0, description="fine-tuning learning rate (below a full training's)")
    replay_ratio: float = Field(1.0, ge=0, description="rows of earlier training data replayed per new row")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="share of the new rows kept for testing")
    force: bool = Field(False, description="run a cycle even when no new data arrived")
    retries: int = Field(2, ge=0, description="retries of each cycle task on a transient error")

    @model_validator(mode="after")
    def _check_cron(self) -> RetrainConfig:
        fields = self.schedule.split()
        if len(fields) != 5:
            raise ValueError(f"schedule {self.schedule!r}: a cron schedule has 5 fields (minute hour day month weekday)")
        from datetime import datetime

        from cronsim import CronSim, CronSimError  # what Prefect parses cron with; importing Prefect costs 1 s

        try:
            CronSim(self.schedule, datetime(2026, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"schedule {self.schedule!r} is not a valid cron schedule: {exc}") from None
        return self


class Params(StrictModel):
    data: DataConfig
    tasks: dict[str, TaskConfig]
    features: FeaturesConfig
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)

    model_config = {"extra": "forbid", "populate_by_name": True}

    @model_validator(mode="after")
    def _cross_check(self) -> Params:
        if not self.tasks:
            raise ValueError("tasks: at least one task is required")
        inputs = set(self.features.input_columns)
        for name, task in self.tasks.items():
            if task.column in inputs:
                raise ValueError(f"tasks.{name}.column {task.column!r} is also an input feature (label leak)")
        if self.data.stratify is not None and self.data.stratify not in self.tasks:
            raise ValueError(f"data.stratify {self.data.stratify!r} is not a task; tasks: {sorted(self.tasks)}")
        for section, table in (("thresholds", self.gate.thresholds),
                               ("champion.tolerances", self.gate.champion.tolerances)):
            for task_name, rules in table.items():
                if task_name not in self.tasks:
                    raise ValueError(f"gate.{section}.{task_name}: not a task; tasks: {sorted(self.tasks)}")
                kind = self.tasks[task_name].type
                allowed = {"binary": BINARY_METRICS, "multiclass": MULTICLASS_METRICS,
                           "regression": REGRESSION_METRICS}[kind]
                for metric in rules:
                    if metric not in allowed:
                        raise ValueError(
                            f"gate.{section}.{task_name}.{metric}: not a {kind} metric; allowed: {', '.join(allowed)}"
                        )
        known = inputs | {t.column for t in self.tasks.values()}
        for section, keys in (("validate.numeric_ranges", self.validate_.numeric_ranges),
                              ("validate.null_fraction", self.validate_.null_fraction),
                              ("drift.thresholds", self.drift.thresholds)):
            for col in keys:
                if col not in known:
                    raise ValueError(f"{section}.{col}: not an input or label column; known: {sorted(known)}")
        for col, (low, high) in self.validate_.numeric_ranges.items():
            if low > high:
                raise ValueError(f"validate.numeric_ranges.{col}: low {low} is above high {high}")
        columns = self.data.csv.columns
        if columns:
            for col in sorted(inputs | {t.column for t in self.tasks.values()} | set(self.features.drop)):
                if col not in columns:
                    raise ValueError(f"column {col!r} is not in data.csv.columns")
        return self

    @property
    def label_columns(self) -> list[str]:
        return [t.column for t in self.tasks.values()]


def metric_is_lower_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def _format(error: ValidationError, source: str) -> str:
    lines = []
    for e in error.errors():
        path = ".".join(str(p) for p in e["loc"] if p not in ("function-after",)) or "(top level)"
        path = path.replace("validate_", "validate")
        lines.append(f"{source}: {path}: {e['msg']}")
    return "\n".join(lines)


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_format(exc, source)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict | None = None) -> Params:
    """Read, merge optional nested ``overrides``, and validate.

    Raises:
        ParamsError: with one line per bad key, each naming its path.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    if overrides:
        raw = deep_merge(raw, overrides)
    return parse_params(raw, str(path))


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out

