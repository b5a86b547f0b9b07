"""Typed configuration of the ML library: tasks, features, model and training.

Every model here forbids unknown keys, so a typo in ``params.yaml`` fails at load time
with the key path (``model.attention.temprature: Extra inputs are not permitted``).
The MLOps layer (``pipelines.params``) composes these with its own sections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskType = Literal["binary", "multiclass", "regression"]
BINARY_METRICS = ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss", "ece")
MULTICLASS_METRICS = ("accuracy", "macro_f1", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Metrics where lower is better; the trainer negates them for early stopping.
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "rmse", "mae"})


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class TaskConfig(StrictModel):
    """One prediction target.

    Attributes:
        column: source column in the raw table.
        type: binary, multiclass or regression.
        positive: for binary tasks, the raw value(s) that mean 1.
        negative: for binary tasks, the raw value(s) that mean 0; when omitted, every other value means 0,
            when given, any other value is a data-validation error.
        classes: for multiclass tasks, the ordered class list (a value outside it is a validation error).
        primary_metric: the metric used for early stopping and the quality summary.
        weight: static multiplier on this task's loss (1.0 = neutral).
    """

    column: str
    type: TaskType
    positive: list[str] | None = None
    negative: list[str] | None = None
    classes: list[str] | None = None
    primary_metric: str | None = None
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check_type_fields(self) -> TaskConfig:
        if self.type == "binary" and not self.positive:
            raise ValueError("binary tasks need `positive`: the raw value(s) that mean the positive class")
        if self.type == "multiclass" and (not self.classes or len(self.classes) < 2):
            raise ValueError("multiclass tasks need `classes`: a list of at least 2 class names")
        if self.type == "multiclass" and len(set(self.classes or [])) != len(self.classes or []):
            raise ValueError("`classes` has duplicates")
        allowed = {"binary": BINARY_METRICS, "multiclass": MULTICLASS_METRICS, "regression": REGRESSION_METRICS}[
            self.type
        ]
        if self.primary_metric is None:
            self.primary_metric = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}[self.type]
        elif self.primary_metric not in allowed:
            raise ValueError(
                f"primary_metric {self.primary_metric!r} is not a {self.type} metric; allowed: {', '.join(allowed)}"
            )
        return self


class TextFeatureConfig(StrictModel):
    """Hashed word n-grams of a text column, fed to an EmbeddingBag."""

    column: str
    n_features: int = Field(2**16, ge=16, le=2**24)
    ngram_max: int = Field(2, ge=1, le=3)


class FeaturesConfig(StrictModel):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    text: list[TextFeatureConfig] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list, description="columns never used as inputs (e.g. label leaks)")

    @model_validator(mode="after")
    def _check_disjoint(self) -> FeaturesConfig:
        names = self.numeric + self.categorical + [t.column for t in self.text]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"columns listed under more than one feature kind: {dup}")
        leaked = sorted(set(names) & set(self.drop))
        if leaked:
            raise ValueError(f"columns are both inputs and in `drop`: {leaked}")
        if not names:
            raise ValueError("no input features: list at least one numeric, categorical or text column")
        return self

    @property
    def input_columns(self) -> list[str]:
        return self.numeric + self.categorical + [t.column for t in self.text]


class AttentionConfig(StrictModel):
    """Task attention (docs/method.md): W = softmax_j(sim(q_i, q_j) / temperature)."""

    similarity: Literal["cosine", "neg_euclidean"] = "cosine"
    descriptor: Literal["batch_mean", "learned"] = "batch_mean"
    descriptor_dim: int = Field(16, ge=1)
    temperature: float = Field(0.5, gt=0)
    alpha: float = Field(0.1, ge=0, description="weight of L_att = sum_i c_i l_i")
    beta: float = Field(1.0, ge=0, description="weight of L_reg")
    lambda_: float = Field(0.01, ge=0, alias="lambda", description="Frobenius coefficient in L_reg")
    mixing: bool = True
    residual: bool = True

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class ModelConfig(StrictModel):
    architecture: str = "task_attention"
    embedding_dim: int = Field(8, ge=1, le=512)
    encoder_hidden: list[int] = Field(default_factory=lambda: [128, 64])
    tower_hidden: list[int] = Field(default_factory=lambda: [32])
    representation_dim: int = Field(32, ge=1, description="k: size of each task representation u_i")
    dropout: float = Field(0.1, ge=0, lt=1)
    num_experts: int = Field(4, ge=1, description="MMoE/PLE experts (shared)")
    task_experts: int = Field(1, ge=1, description="PLE experts per task")
    ple_levels: int = Field(2, ge=1)
    attention: AttentionConfig = Field(default_factory=AttentionConfig)

    @model_validator(mode="after")
    def _check_architecture(self) -> ModelConfig:
        from mtl_core.architectures import ARCHITECTURES  # late import: the registry imports this module

        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; allowed: {', '.join(sorted(ARCHITECTURES))}"
            )
        if any(h < 1 for h in self.encoder_hidden + self.tower_hidden):
            raise ValueError("hidden layer sizes must be >= 1")
        return self


class TrainConfig(StrictModel):
    seed: int = 0
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(512, ge=1, description="global batch size, divided across processes")
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float | None = Field(5.0, gt=0)
    scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)
    patience: int = Field(4, ge=1, description="epochs without validation improvement before stopping")
    weighting: str = "equal"
    processes: int = Field(1, ge=1, description="worker processes per machine (torchrun --nproc-per-node)")
    threads_per_process: int | None = Field(None, ge=1, description="CPU threads per worker; default: cores / processes")
    # Distributed launch and fault tolerance (docs/distributed.md).
    nodes: int = Field(1, ge=1, description="machines (torchrun --nnodes); above 1 needs rdzv_endpoint")
    rdzv_endpoint: str | None = Field(None, description="host:port of the rendezvous (c10d) for several nodes")
    rdzv_id: str = Field("mtl-train", min_length=1, description="job id shared by all nodes of one run")
    max_restarts: int = Field(0, ge=0, description="torchrun restarts of the whole group after a worker dies")
    resume: Literal["auto", "never"] = Field("auto", description="auto: continue from the last checkpoint")
    checkpoint_dir: str | None = Field(None, description="per-epoch checkpoints; None: no checkpoints")
    init_from: str | None = Field(
        None, description="model bundle directory whose weights start the training (fine-tuning); None: random init"
    )
    collective_timeout_s: float = Field(300.0, gt=0, description="a collective waiting longer raises (no hang)")

    @model_validator(mode="after")
    def _check_weighting(self) -> TrainConfig:
        from mtl_core.weighting import WEIGHTINGS

        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; allowed: {', '.join(sorted(WEIGHTINGS))}")
        return self

    @model_validator(mode="after")
    def _check_distributed(self) -> TrainConfig:
        if self.nodes > 1 and not self.rdzv_endpoint:
            raise ValueError("nodes > 1 needs rdzv_endpoint (host:port of the rendezvous, reachable from every node)")
        if self.rdzv_endpoint is not None:
            host, sep, port = self.rdzv_endpoint.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"rdzv_endpoint {self.rdzv_endpoint!r} must be host:port with a port in 1..65535")
        if self.max_restarts > 0 and not self.checkpoint_dir:
            raise ValueError("max_restarts > 0 needs checkpoint_dir: a restarted group resumes from its checkpoint")
        return self
