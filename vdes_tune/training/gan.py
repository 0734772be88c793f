"""GAN training tasks: CycleGAN (paper 2.3.2: LSGAN losses (1)-(2), cycle (3), identity (4)) and Pix2Pix
(Isola et al.: conditional PatchGAN + L1 to the paired real DES)."""

from __future__ import annotations

import itertools
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from vdes_tune.models.cyclegan import CycleGAN, ImagePool, PatchDiscriminator
from vdes_tune.training.engine import adam, prepare_device, to_device
from vdes_tune.training.tasks import autocast_for, evaluate_generator


def _lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: the reference's stand-in for the log terms of eqs. (1)-(2)."""
    scores = scores.float()
    return F.mse_loss(scores, torch.ones_like(scores) if real else torch.zeros_like(scores))


def _vanilla(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """The original GAN loss on raw scores (Pix2Pix's reference default)."""
    scores = scores.float()
    return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores) if real else torch.zeros_like(scores))


GAN_LOSSES = {"vanilla": _vanilla, "lsgan": _lsgan}


def _requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    for m in modules:
        m.requires_grad_(flag)


class CycleGANTask:
    """G: LE -> DES and F: DES -> LE with discriminators D_des, D_le; selected on validation L1 of G to the real DES."""

    selection_metric = "l1"
    selection_mode = "min"

    def __init__(self, model: CycleGAN, lr: float, device: torch.device, betas: tuple[float, float] = (0.5, 0.999),
                 lambda_cycle: float = 10.0, lambda_identity: float = 5.0, pool_size: int = 50, seed: int = 0) -> None:
        prepare_device(device, model)
        self.model, self.device = model, device
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.opt_g = adam(itertools.chain(model.g_le2des.parameters(), model.g_des2le.parameters()), lr, betas)
        self.opt_d = adam(itertools.chain(model.d_des.parameters(), model.d_le.parameters()), lr, betas)
        self.pool_des, self.pool_le = ImagePool(pool_size, seed), ImagePool(pool_size, seed + 1)

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode of all four networks."""
        self.model.train(mode)

    def train_step(self, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """One generator step on eq. (5), then one discriminator step on pooled fakes."""
        images, _ = batch
        x, y = to_device(images["le"], self.device), to_device(images["des"], self.device)  # X = LE, Y = DES
        m = self.model
        discriminators = (m.d_des, m.d_le)

        _requires_grad(discriminators, False)  # the generator step must not move the discriminators
        with autocast_for(self.device):
            fake_y, fake_x = m.g_le2des(x), m.g_des2le(y)
            gan_g, gan_f = _lsgan(m.d_des(fake_y), True), _lsgan(m.d_le(fake_x), True)
            cycle = F.l1_loss(m.g_des2le(fake_y).float(), x) + F.l1_loss(m.g_le2des(fake_x).float(), y)
            if self.lambda_identity > 0:
                identity = F.l1_loss(m.g_le2des(y).float(), y) + F.l1_loss(m.g_des2le(x).float(), x)
            else:
                identity = torch.zeros((), device=self.device)
            loss_g = gan_g + gan_f + self.lambda_cycle * cycle + self.lambda_identity * identity
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        _requires_grad(discriminators, True)
        fake_y_seen, fake_x_seen = self.pool_des.query(fake_y.detach()), self.pool_le.query(fake_x.detach())
        with autocast_for(self.device):
            loss_d_des = 0.5 * (_lsgan(m.d_des(y), True) + _lsgan(m.d_des(fake_y_seen), False))
            loss_d_le = 0.5 * (_lsgan(m.d_le(x), True) + _lsgan(m.d_le(fake_x_seen), False))
        self.opt_d.zero_grad(set_to_none=True)
        (loss_d_des + loss_d_le).backward()
        self.opt_d.step()
        return {"loss": loss_g.item(), "gan_g": gan_g.item(), "gan_f": gan_f.item(), "cycle": cycle.item(),
                "identity": identity.item(), "d_des": loss_d_des.item(), "d_le": loss_d_le.item()}

    def evaluate(self, batches: Iterable[Any]) -> dict[str, Any]:
        """Image metrics of G's virtual DES on a loader."""
        return evaluate_generator(self.model.g_le2des, batches, self.device)

    def state_dict(self) -> dict[str, Any]:
        """All four networks (G alone is what the architectures load)."""
        return {"cyclegan": self.model.state_dict(), "generator": self.model.g_le2des.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """Networks, both optimisers and both image pools: what resuming mid-run needs."""
        return {"cyclegan": self.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "pool_des": self.pool_des.state(), "pool_le": self.pool_le.state()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Resume from `training_state()`."""
        self.model.load_state_dict(state["cyclegan"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.pool_des.load_state(state["pool_des"], self.device)
        self.pool_le.load_state(state["pool_le"], self.device)


class Pix2PixTask:
    """Pix2Pix: a U-Net G (LE -> DES) against a conditional PatchGAN D on (LE, DES) pairs, plus lambda * L1(G(LE),
    DES); selected on validation L1 of G to the real DES like the other generators."""

    selection_metric = "l1"
    selection_mode = "min"

    def __init__(self, generator: nn.Module, discriminator: PatchDiscriminator, lr: float, device: torch.device,
                 betas: tuple[float, float] = (0.5, 0.999), lambda_l1: float = 100.0,
                 gan_loss: str = "vanilla") -> None:
        prepare_device(device, generator, discriminator)
        self.generator, self.discriminator, self.device = generator, discriminator, device
        self.lambda_l1, self.gan = lambda_l1, GAN_LOSSES[gan_loss]
        self.opt_g = adam(generator.parameters(), lr, betas)
        self.opt_d = adam(discriminator.parameters(), lr, betas)

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode of both networks."""
        self.generator.train(mode)
        self.discriminator.train(mode)

    def train_step(self, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """One discriminator step on real and generated pairs, then one generator step (the reference's order)."""
        images, _ = batch
        le, des = to_device(images["le"], self.device), to_device(images["des"], self.device)
        d = self.discriminator
        with autocast_for(self.device):
            fake = self.generator(le)
            loss_d = 0.5 * (self.gan(d(torch.cat([le, des], 1)), True)
                            + self.gan(d(torch.cat([le, fake.detach()], 1)), False))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        _requires_grad([d], False)  # the generator step must not move the discriminator
        with autocast_for(self.device):
            gan_g = self.gan(d(torch.cat([le, fake], 1)), True)
            l1 = F.l1_loss(fake.float(), des)
            loss_g = gan_g + self.lambda_l1 * l1
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        _requires_grad([d], True)
        return {"loss": loss_g.item(), "gan_g": gan_g.item(), "l1": l1.item(), "d": loss_d.item()}

    def evaluate(self, batches: Iterable[Any]) -> dict[str, Any]:
        """Image metrics of G's virtual DES on a loader."""
        return evaluate_generator(self.generator, batches, self.device)

    def state_dict(self) -> dict[str, Any]:
        """G (what the architectures load) and D (kept with the generator for further training)."""
        return {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """Both networks and both optimisers: what resuming mid-run needs."""
        return {**self.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Resume from `training_state()`."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
