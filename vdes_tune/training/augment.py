"""The paper's augmentation (3.2.3): flips, rot90, sharpness, autocontrast; one draw for all images of a sample."""

from __future__ import annotations

import torch
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
    # Stacking the images as channels of one tensor makes torchvision draw the parameters once; each
    # pixel operation (autocontrast, sharpness) still works per channel, i.e. per image.
    keys = list(images)
    stacked = torch.cat([images[k] for k in keys], dim=0)
    out = transform(stacked)
    return {k: out[i:i + 1] for i, k in enumerate(keys)}
