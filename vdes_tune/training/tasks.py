"""Tasks for the one loop: each owns its optimiser(s), its step and its evaluation."""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from vdes_tune.models.architectures import Architecture, compose
from vdes_tune.training.metrics import classification_metrics


class ClassificationTask:
    """Classifier on the architecture's three channels; a frozen (#4, #6) or co-trained (#5) generator."""

    selection_metric = "f1"
    selection_mode = "max"

    def __init__(self, arch: Architecture, classifier: nn.Module, lr: float, device: torch.device,
                 generator: nn.Module | None = None, recon_weight: float = 0.0) -> None:
        import timm

        self.arch, self.device = arch, device
        self.classifier = classifier.to(device)
        self.generator = generator.to(device) if generator is not None else None
        self.recon_weight = recon_weight
        data_cfg = timm.data.resolve_model_data_config(classifier)
        self.mean = torch.tensor(data_cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(data_cfg["std"], device=device).view(1, 3, 1, 1)
        params = list(self.classifier.parameters())
        if self.generator is not None and arch.end_to_end:
            params += list(self.generator.parameters())
        elif self.generator is not None:
            self.generator.requires_grad_(False)
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode; a frozen generator always stays in evaluation mode."""
        self.classifier.train(mode)
        if self.generator is not None:
            self.generator.train(mode and self.arch.end_to_end)

    def _forward(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = {k: v.to(self.device, non_blocking=True) for k, v in images.items()}
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
                recon = F.l1_loss(vdes.float(), images["des"].to(self.device))
                loss = loss + self.recon_weight * recon
                out["recon"] = recon.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return out

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Any]) -> dict[str, Any]:
        """Metrics of the malignant probability over a loader."""
        labels, probs = [], []
        for images, y in batches:
            with self.autocast:
                logits, _ = self._forward(images)
            probs.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
            labels.append(y)
        return classification_metrics(torch.cat(labels).numpy(), torch.cat(probs).numpy())

    def state_dict(self) -> dict[str, Any]:
        """Weights of everything the task trains or uses."""
        state = {"classifier": self.classifier.state_dict()}
        if self.generator is not None:
            state["generator"] = self.generator.state_dict()
        return state

