"""Multi-task architectures, one per module, registered by name in ``ARCHITECTURES``."""

from mtl_core.architectures import mmoe, ple, shared_bottom, single_task, task_attention  # noqa: F401  (registers them)
from mtl_core.architectures.base import (
    ARCHITECTURES,
    ModelOutput,
    MultiTaskModel,
    build_model,
    register_architecture,
)

__all__ = ["ARCHITECTURES", "ModelOutput", "MultiTaskModel", "build_model", "register_architecture"]
