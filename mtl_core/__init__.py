"""mtl_core: multi-task learning with task attention (PyTorch + scikit-learn only).

The library knows nothing of DVC, Prefect or Great Expectations; ``pipelines`` builds the MLOps
workflow on top of it.
"""

from mtl_core.architectures import ARCHITECTURES, ModelOutput, MultiTaskModel, build_model
from mtl_core.bundle import ModelBundle
from mtl_core.config import AttentionConfig, FeaturesConfig, ModelConfig, TaskConfig, TrainConfig
from mtl_core.data import TensorTable
from mtl_core.preprocessing import FeaturePreprocessor, FeatureSchema
from mtl_core.tasks import TaskSpec, encode_targets, fit_tasks
from mtl_core.trainer import Trainer, TrainResult
from mtl_core.weighting import WEIGHTINGS, Weighting, build_weighting

__version__ = "0.1.0"
__all__ = [
    "ARCHITECTURES", "AttentionConfig", "FeaturePreprocessor", "FeatureSchema", "FeaturesConfig", "ModelBundle",
    "ModelConfig", "ModelOutput", "MultiTaskModel", "TaskConfig", "TaskSpec", "TensorTable", "TrainConfig",
    "TrainResult", "Trainer", "WEIGHTINGS", "Weighting", "build_model", "build_weighting", "encode_targets",
    "fit_tasks",
]
