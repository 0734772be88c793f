"""Classifiers from timm (ResNet18, ResNet34, RegNetY-1.6GF), 2 classes, dropout before the head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vdes_tune.errors import BadInputError

CLASSIFIERS = ("resnet18", "resnet34", "regnety_016")


def build_classifier(name: str, dropout: float = 0.2, num_classes: int = 2, in_channels: int = 3,
                     weights: str | Path | None = None) -> nn.Module:
    """A timm model with fresh weights, or weights from a local file (never a download)."""
    import timm

    if name not in CLASSIFIERS:
        raise BadInputError(f"unknown classifier {name!r}; available: {', '.join(CLASSIFIERS)}")
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, drop_rate=dropout,
                              in_chans=in_channels)
    if weights:
        load_backbone(model, Path(weights))
    return model


def load_backbone(model: nn.Module, path: Path) -> list[str]:
    """Load a local state dict (tensors only), skipping head weights whose shapes differ; returns skipped keys."""
    if not path.is_file():
        raise BadInputError(f"{path}: classifier weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    missing = set(own) - set(usable)
    if len(missing) > len(own) // 2:
        raise BadInputError(f"{path}: only {len(usable)} of {len(own)} tensors match this model; wrong file?")
    model.load_state_dict(usable, strict=False)
    return skipped
