"""Tasks for the one loop: each owns its optimiser(s), its step and its evaluation."""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from vdes_tune.models.architectures import Architecture, compose
from vdes_tune.training.engine import SCORES, adam, prepare_device, to_device
from vdes_tune.training.metrics import classification_metrics, image_metrics


class ClassificationTask:
    """Classifier on the architecture's three channels; a frozen (#4, #6) or co-trained (#5) generator."""

    selection_metric = "f1"
    selection_mode = "max"
    tie_breakers = (("roc_auc", "max"), ("loss", "min"))

    def __init__(self, arch: Architecture, classifier: nn.Module, lr: float, device: torch.device,
                 generator: nn.Module | None = None, recon_weight: float = 0.0) -> None:
        import timm

        self.arch, self.device = arch, device
        prepare_device(device, classifier, generator)
        self.classifier, self.generator = classifier, generator
        self.recon_weight = recon_weight
        data_cfg = timm.data.resolve_model_data_config(classifier)
        self.mean = torch.tensor(data_cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(data_cfg["std"], device=device).view(1, 3, 1, 1)
        params = list(self.classifier.parameters())
        if self.generator is not None and arch.end_to_end:
            params += list(self.generator.parameters())
        elif self.generator is not None:
            self.generator.requires_grad_(False)
        self.optimizer = adam(params, lr)
        self.autocast = autocast_for(device)

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode; a frozen generator always stays in evaluation mode."""
        self.classifier.train(mode)
        if self.generator is not None:
            self.generator.train(mode and self.arch.end_to_end)

    def _forward(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = {k: to_device(v, self.device) for k, v in images.items()}
        vdes = None
        if self.generator is not None:
            with torch.set_grad_enabled(self.arch.end_to_end and self.classifier.training):
                vdes = self.generator(images["le"])
            images["vdes"] = vdes
        x = (compose(self.arch, images) - self.mean) / self.std
        return self.classifier(x), vdes

    def train_step(self, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """One optimiser step on cross-entropy (plus the optional reconstruction term for #5)."""
        images, labels = batch
        labels = labels.to(self.device)
        with self.autocast:
            logits, vdes = self._forward(images)
            loss = F.cross_entropy(logits.float(), labels)
            out = {"loss": loss.item()}
            if self.recon_weight > 0 and vdes is not None:
                recon = F.l1_loss(vdes.float(), to_device(images["des"], self.device))
                loss = loss + self.recon_weight * recon
                out["recon"] = recon.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return out

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Any]) -> dict[str, Any]:
        """Metrics of the malignant probability over a loader, and the probabilities themselves (SCORES)."""
        labels, probs, losses = [], [], []
        for images, y in batches:
            with self.autocast:
                logits, _ = self._forward(images)
            probs.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
            losses.append(F.cross_entropy(logits.float(), y.to(self.device), reduction="sum").item())
            labels.append(y)
        y_true, scores = torch.cat(labels).numpy(), torch.cat(probs).numpy()
        return {**classification_metrics(y_true, scores), "loss": float(sum(losses) / max(len(y_true), 1)),
                SCORES: scores}

    def state_dict(self) -> dict[str, Any]:
        """Weights of everything the task trains or uses."""
        state = {"classifier": self.classifier.state_dict()}
        if self.generator is not None:
            state["generator"] = self.generator.state_dict()
        return state

    def training_state(self) -> dict[str, Any]:
        """Weights and optimiser state: what a checkpoint needs to resume mid-run."""
        return {**self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Resume from `training_state()`."""
        self.classifier.load_state_dict(state["classifier"])
        if self.generator is not None:
            self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])

    def to(self, device: torch.device) -> "ClassificationTask":
        """Move models, optimiser state and normalisation to `device` (to park idle repeats off the GPU)."""
        self.optimizer.zero_grad(set_to_none=True)
        for module in (self.classifier, self.generator):
            if module is not None:
                module.to(device)
        for state in self.optimizer.state.values():
            for k, v in state.items():
                if isinstance(v, torch.Tensor):  # "step" too: the fused kernel wants it beside the weights
                    state[k] = v.to(device)
        self.mean, self.std, self.device = self.mean.to(device), self.std.to(device), device
        self.autocast = autocast_for(device)
        return self


def autocast_for(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def generator_outputs(generator: nn.Module, batches: Iterable[Any], device: torch.device) -> tuple[Any, Any]:
    """(virtual DES, real DES) as N x H x W float arrays in [0, 1] over a loader of (images, label)."""
    preds, targets = [], []
    for images, _ in batches:
        with autocast_for(device):
            vdes = generator(to_device(images["le"], device))
        preds.append(vdes.float().clamp(0, 1)[:, 0].cpu())
        targets.append(images["des"][:, 0])
    return torch.cat(preds).numpy(), torch.cat(targets).numpy()


def evaluate_generator(generator: nn.Module, batches: Iterable[Any], device: torch.device) -> dict[str, Any]:
    """L1, MSE, PSNR and SSIM of the virtual DES against the real DES over a loader of (images, label)."""
    pred, target = generator_outputs(generator, batches, device)
    return {"l1": float(abs(pred - target).mean()), **image_metrics(pred, target), "n": len(pred)}


class TranslationTask:
    """Paired LE -> DES translation (U-Net/PT): L1 (or L2) between the generator output and the real DES."""

    selection_metric = "l1"
    selection_mode = "min"

    def __init__(self, generator: nn.Module, lr: float, device: torch.device, loss: str = "l1",
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        prepare_device(device, generator)
        self.generator, self.device = generator, device
        self.loss = {"l1": F.l1_loss, "l2": F.mse_loss}[loss]
        self.optimizer = adam(generator.parameters(), lr, betas)

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode of the generator."""
        self.generator.train(mode)

    def train_step(self, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> dict[str, float]:
        """One optimiser step on the paired loss."""
        images, _ = batch
        le, des = to_device(images["le"], self.device), to_device(images["des"], self.device)
        with autocast_for(self.device):
            loss = self.loss(self.generator(le).float(), des)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def evaluate(self, batches: Iterable[Any]) -> dict[str, Any]:
        """Image metrics of the virtual DES on a loader."""
        return evaluate_generator(self.generator, batches, self.device)

    def state_dict(self) -> dict[str, Any]:
        """The generator's weights."""
        return {"generator": self.generator.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """Weights and optimiser state: what resuming mid-run needs."""
        return {**self.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Resume from `training_state()`."""
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
