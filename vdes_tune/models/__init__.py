"""Networks only (no training code): U-Net, CycleGAN, timm classifiers, and the model registry."""

from vdes_tune.models.registry import MODELS, ModelInfo, build_model, describe

__all__ = ["MODELS", "ModelInfo", "build_model", "describe"]
