"""Multi-task architectures, one per module, registered by name in ``ARCHITECTURES``."""

from mtl_core.architectures.base import (
    ARCHITECTURES,
    ModelOutput,
    MultiTaskModel,
    build_model,
    register_architecture,
)
from mtl_core.architectures import shared_bottom, task_attention  # noqa: F401  (registers them)

__all__ = ["ARCHITECTURES", "ModelOutput", "MultiTaskModel", "build_model", "register_architecture"]
