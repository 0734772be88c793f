"""Networks only (no training code): U-Net, CycleGAN, timm classifiers, and the model registry.

The registry is imported on first use: `models.architectures` (what a config validates against) is read
by processes that never build a network, such as a replayed search's trials, and torch costs seconds there.
"""

from typing import Any

__all__ = ["MODELS", "ModelInfo", "build_model", "describe"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vdes_tune.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'vdes_tune.models' has no attribute {name!r}")
