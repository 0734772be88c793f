"""The LE -> DES generators as plug-ins: each declares its network and its training task, nothing else.

A new generator is one `GeneratorSpec` here, its defaults in `config.GENERATOR_DEFAULTS`, a task with
`train_step` / `evaluate` / `state_dict` for the one loop (training/engine.py), and an architecture in
models/architectures.py that names it; search, evaluation, report and montage then pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

from vdes_tune.registry import Registry

if TYPE_CHECKING:
    import torch

    from vdes_tune.config import GeneratorConfig

# The TrainConfig / GeneratorConfig fields that shape a U-Net generator (searched for #4 and #5).
UNET_SHAPE = ("unet_width", "unet_depth", "unet_dropout")


@dataclass(frozen=True)
class GeneratorSpec:
    """One generator model: how to build its LE -> DES network and its training task from a GeneratorConfig."""

    name: str
    label: str
    network: Callable[["GeneratorConfig"], nn.Module]  # the LE -> DES network alone (what #4/#6/#7 load)
    task: Callable[["GeneratorConfig", "torch.device"], Any]  # the training task of the one loop
    shape_fields: tuple[str, ...] = ()  # fields an architecture's TrainConfig passes on (searched shape)


GENERATORS: Registry[GeneratorSpec] = Registry("generator")


def _betas(cfg: "GeneratorConfig") -> tuple[float, float]:
    return (cfg.betas[0], cfg.betas[1])


def _unet(cfg: "GeneratorConfig") -> nn.Module:
    from vdes_tune.models.unet import UNet

    return UNet(cfg.unet_width, cfg.unet_depth, cfg.unet_dropout)


def _resnet(cfg: "GeneratorConfig") -> nn.Module:
    from vdes_tune.models.cyclegan import ResnetGenerator

    return ResnetGenerator(1, 1, cfg.features, cfg.blocks)


def _translation_task(cfg: "GeneratorConfig", device: "torch.device") -> Any:
    from vdes_tune.training.tasks import TranslationTask

    return TranslationTask(_unet(cfg), cfg.lr, device, cfg.loss, _betas(cfg))


def _cyclegan_task(cfg: "GeneratorConfig", device: "torch.device") -> Any:
    from vdes_tune.models.cyclegan import CycleGAN
    from vdes_tune.training.gan import CycleGANTask

    model = CycleGAN(cfg.features, cfg.blocks, cfg.disc_features)
    return CycleGANTask(model, cfg.lr, device, _betas(cfg), cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size,
                        cfg.seed)


def _pix2pix_task(cfg: "GeneratorConfig", device: "torch.device") -> Any:
    from vdes_tune.models.cyclegan import PatchDiscriminator
    from vdes_tune.training.gan import Pix2PixTask

    # Conditional PatchGAN: it judges (LE, DES) pairs, so it sees two channels; BatchNorm as in Isola et al.
    disc = PatchDiscriminator(2, cfg.disc_features, cfg.disc_layers, norm="batch")
    return Pix2PixTask(_unet(cfg), disc, cfg.lr, device, _betas(cfg), cfg.lambda_l1, cfg.gan_loss)


for _spec in (
    GeneratorSpec("unet", "U-Net", _unet, _translation_task, UNET_SHAPE),
    GeneratorSpec("cyclegan", "CycleGAN", _resnet, _cyclegan_task),
    GeneratorSpec("pix2pix", "Pix2Pix", _unet, _pix2pix_task, UNET_SHAPE),
):
    GENERATORS.register(_spec.name)(_spec)


def build_generator(cfg: "GeneratorConfig") -> nn.Module:
    """The LE -> DES network a generator config describes (for the GANs, the generator alone)."""
    return GENERATORS.get(cfg.model).network(cfg)


def generator_config(model: str, shape: dict[str, Any] | None = None) -> "GeneratorConfig":
    """A generator's defaults, shaped by the fields it takes from an architecture's TrainConfig."""
    from vdes_tune.config import GeneratorConfig

    spec = GENERATORS.get(model)
    return GeneratorConfig.for_model(model, **{k: v for k, v in (shape or {}).items() if k in spec.shape_fields})
