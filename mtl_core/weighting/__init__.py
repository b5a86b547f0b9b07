"""Loss-weighting strategies, one per module, registered by name in ``WEIGHTINGS``."""

from mtl_core.weighting import dwa, equal, gradnorm, pcgrad, uncertainty  # noqa: F401  (registers them)
from mtl_core.weighting.base import WEIGHTINGS, Weighting, build_weighting, register_weighting

__all__ = ["WEIGHTINGS", "Weighting", "build_weighting", "register_weighting"]
