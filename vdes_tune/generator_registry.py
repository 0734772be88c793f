"""The LE -> DES generators as plug-ins, one registry entry each: its label, its defaults, the fields it takes
from an architecture's TrainConfig, and where its network and its training task are built.

A new generator is one `GeneratorSpec` here, a network builder in models/generators.py, a task with
`train_step` / `evaluate` / `state_dict` for the one loop (training/engine.py) and its builder in
training/generators.py, and an architecture in models/architectures.py that names it; search, evaluation,
report and montage then pick it up. Builders are named by import path, so this module (and config.py, which
reads the defaults) stays free of torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vdes_tune.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from vdes_tune.config import GeneratorConfig

# The TrainConfig / GeneratorConfig fields that shape a U-Net generator (searched for #4 and #5).
UNET_SHAPE = ("unet_width", "unet_depth", "unet_dropout")


@dataclass(frozen=True)
class GeneratorSpec:
    """One generator model: its defaults and how to build its LE -> DES network and its training task."""

    name: str
    label: str
    network: str  # "module:function" building the LE -> DES network alone from a GeneratorConfig (#4/#6/#7 load it)
    task: str  # "module:function" building the training task of the one loop from (GeneratorConfig, device)
    defaults: dict[str, Any] = field(default_factory=dict)  # GeneratorConfig fields this model sets otherwise
    shape_fields: tuple[str, ...] = ()  # fields an architecture's TrainConfig passes on (searched shape)

    def build_network(self, cfg: "GeneratorConfig") -> "nn.Module":
        """The LE -> DES network of `cfg`."""
        return _resolve(self.network)(cfg)

    def build_task(self, cfg: "GeneratorConfig", device: "torch.device") -> Any:
        """The training task of `cfg` on `device`."""
        return _resolve(self.task)(cfg, device)


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


GENERATORS: Registry[GeneratorSpec] = Registry("generator")

for _spec in (
    # Paper 3.1 is silent on the U-Net's pre-training, which uses the classifier's protocol: Adam 5e-4, 30
    # epochs, batch 16 (GeneratorConfig's own defaults, written here as the model's).
    GeneratorSpec("unet", "U-Net", "vdes_tune.models.generators:unet", "vdes_tune.training.generators:translation_task",
                  {"epochs": 30, "batch_size": 16, "lr": 5e-4, "betas": (0.9, 0.999)}, UNET_SHAPE),
    # Paper 3.1 gives the CycleGAN settings (those of its reference [14]).
    GeneratorSpec("cyclegan", "CycleGAN", "vdes_tune.models.generators:resnet",
                  "vdes_tune.training.generators:cyclegan_task",
                  {"epochs": 300, "batch_size": 8, "lr": 1e-5, "betas": (0.5, 0.999)}),
    # Pix2Pix as in Isola et al.'s reference: Adam 2e-4 (0.5, 0.999), batch 1, 200 epochs, lambda_L1 100,
    # vanilla GAN loss, 64-filter U-Net with dropout 0.5 and a 70x70 PatchGAN. The reference U-Net has 8
    # levels for 256-pixel images; 224-pixel crops halve cleanly only 5 times, so 6 levels.
    GeneratorSpec("pix2pix", "Pix2Pix", "vdes_tune.models.generators:unet",
                  "vdes_tune.training.generators:pix2pix_task",
                  {"epochs": 200, "batch_size": 1, "lr": 2e-4, "betas": (0.5, 0.999), "unet_width": 64,
                   "unet_depth": 6, "unet_dropout": 0.5, "lambda_l1": 100.0, "gan_loss": "vanilla"}, UNET_SHAPE),
):
    GENERATORS.register(_spec.name)(_spec)


def build_generator(cfg: "GeneratorConfig") -> "nn.Module":
    """The LE -> DES network a generator config describes (for the GANs, the generator alone)."""
    return GENERATORS.get(cfg.model).build_network(cfg)
