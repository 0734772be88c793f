"""The model registry: every network by name, with parameter counts and shapes for `models describe`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from vdes_tune.config import GeneratorConfig
from vdes_tune.models.classifiers import CLASSIFIERS, build_classifier
from vdes_tune.models.cyclegan import CycleGAN
from vdes_tune.models.unet import UNet
from vdes_tune.registry import Registry


@dataclass(frozen=True)
class ModelInfo:
    """How to build one registered model and what it maps."""

    name: str
    kind: str  # "generator" or "classifier"
    build: Callable[..., nn.Module]
    in_channels: int
    out_desc: str
    defaults: dict[str, Any]


MODELS: Registry[ModelInfo] = Registry("model")


def _add(info: ModelInfo) -> None:
    MODELS.register(info.name)(info)


def _unet_args(model: str) -> dict[str, Any]:
    cfg = GeneratorConfig.for_model(model)  # the generator's own defaults, from its registry entry
    return {"width": cfg.unet_width, "depth": cfg.unet_depth, "dropout": cfg.unet_dropout}


_cyclegan = GeneratorConfig.for_model("cyclegan")
_add(ModelInfo("unet", "generator", UNet, 1, "1-channel virtual DES", _unet_args("unet")))
_add(ModelInfo("cyclegan", "generator", CycleGAN, 1, "1-channel virtual DES (G: LE -> DES)",
               {"features": _cyclegan.features, "blocks": _cyclegan.blocks, "disc_features": _cyclegan.disc_features}))
# Pix2Pix's generator is a U-Net (its reference's width and dropout); its PatchGAN only trains it.
_add(ModelInfo("pix2pix", "generator", UNet, 1, "1-channel virtual DES", _unet_args("pix2pix")))
for _name in CLASSIFIERS:
    _add(ModelInfo(_name, "classifier", lambda _n=_name, **kw: build_classifier(_n, **kw), 3,
                   "2 logits (non-malignant, malignant)", {"dropout": 0.2}))


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Instantiate a registered model with its defaults updated by `overrides`."""
    info = MODELS.get(name)
    return info.build(**{**info.defaults, **overrides})


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def describe(name: str, input_size: int = 224, batch: int = 1, **overrides: Any) -> dict[str, Any]:
    """Parameters (per sub-network where there are several), input and output shapes of one model."""
    info = MODELS.get(name)
    model = build_model(name, **overrides).eval()
    parts = {"total": parameter_count(model)}
    if isinstance(model, CycleGAN):
        parts.update({k: parameter_count(getattr(model, k)) for k in ("g_le2des", "g_des2le", "d_des", "d_le")})
    x = torch.zeros(batch, info.in_channels, input_size, input_size)
    with torch.no_grad():
        y = model(x)
    return {
        "name": name, "kind": info.kind, "config": {**info.defaults, **overrides},
        "parameters": parts, "input_shape": list(x.shape), "output_shape": list(y.shape),
        "output": info.out_desc,
    }
