"""The paper's augmentation (3.2.3): flips, rot90, sharpness, autocontrast; one draw for all images of a sample."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def paper_augmentation(p: float = 0.5) -> v2.Compose:
    """Random h/v flip, rotation by a multiple of 90 degrees, sharpness and autocontrast, each cumulative."""
    rot90 = v2.RandomChoice([v2.RandomRotation((a, a)) for a in (0, 90, 180, 270)])
    return v2.Compose([
        v2.RandomHorizontalFlip(p),
        v2.RandomVerticalFlip(p),
        rot90,
        v2.RandomAdjustSharpness(sharpness_factor=2.0, p=p),
        v2.RandomAutocontrast(p=p),
    ])


def augment_sample(transform: v2.Compose, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply one random draw of `transform` to every 1 x H x W uint8 image of a sample (LE, LED, DES, ...)."""
    # torchvision v2 draws a transform's parameters once per call and applies them to every image
    # passed in that call, which is exactly "the same transformation on each input of a sample".
    keys = list(images)
    out = transform(*[tv_tensors.Image(images[k]) for k in keys])
    out = out if isinstance(out, tuple) else (out,)
    return {k: o.as_subclass(torch.Tensor) for k, o in zip(keys, out)}
