"""Loss-weighting strategies, one per module, registered by name in ``WEIGHTINGS``."""

from mtl_core.weighting.base import WEIGHTINGS, Weighting, build_weighting, register_weighting
from mtl_core.weighting import equal  # noqa: F401  (registers it)

__all__ = ["WEIGHTINGS", "Weighting", "build_weighting", "register_weighting"]
