"""The LE -> DES networks of the generator plug-ins (vdes_tune/generator_registry.py names them), built from a
GeneratorConfig: a U-Net (U-Net/PT, U-Net/EE and Pix2Pix's generator) and the CycleGAN's ResNet generator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from vdes_tune.config import GeneratorConfig


def unet(cfg: "GeneratorConfig") -> nn.Module:
    """The U-Net of `cfg`'s width, depth and dropout."""
    from vdes_tune.models.unet import UNet

    return UNet(cfg.unet_width, cfg.unet_depth, cfg.unet_dropout)


def resnet(cfg: "GeneratorConfig") -> nn.Module:
    """The CycleGAN's LE -> DES ResNet generator."""
    from vdes_tune.models.cyclegan import ResnetGenerator

    return ResnetGenerator(1, 1, cfg.features, cfg.blocks)
