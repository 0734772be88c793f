"""The one training loop: epochs, per-epoch validation, best-epoch selection; tasks own their step."""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch


class Task(Protocol):
    """What the loop needs from a task (classification, paired translation, CycleGAN, end-to-end)."""

    selection_metric: str
    selection_mode: str  # "max" or "min"

    def train(self, mode: bool = True) -> Any: ...
    def train_step(self, batch: Any) -> dict[str, float]: ...
    def evaluate(self, batches: Iterable[Any]) -> dict[str, Any]: ...
    def state_dict(self) -> dict[str, Any]: ...


@dataclass
class FitResult:
    """Per-epoch history and the metrics of the epoch chosen on validation."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_val: dict[str, Any] = field(default_factory=dict)
    best_test: dict[str, Any] = field(default_factory=dict)
    best_state: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; deterministic kernels where torch has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def prepare_device(device: torch.device, *modules: torch.nn.Module | None) -> None:
    """Move modules to `device`; on CUDA use channels_last and let cuDNN pick its fastest kernels."""
    if device.type == "cuda":
        # Determinism is promised on CPU only; on the GPU speed wins.
        torch.backends.cudnn.benchmark = True
        torch.use_deterministic_algorithms(False)
    for module in modules:
        if module is not None:
            module.to(device)
            if device.type == "cuda":
                module.to(memory_format=torch.channels_last)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch tensor on `device` (channels_last for 4-D tensors on CUDA)."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    if value != value:  # NaN never wins
        return False
    return value > best if mode == "max" else value < best


def fit(task: Task, train: Iterable[Any], val: Iterable[Any], test: Iterable[Any] | None, epochs: int,
        on_epoch: Callable[[dict[str, Any]], None] | None = None, patience: int = 0) -> FitResult:
    """Train for `epochs`, validate each epoch, keep the epoch with the best validation metric.

    With `patience` > 0, stop once that many epochs in a row have not improved the validation metric.
    """
    result = FitResult()
    best: float | None = None
    for epoch in range(epochs):
        start = time.perf_counter()
        task.train(True)
        sums: dict[str, float] = {}
        steps = 0
        for batch in train:
            for k, v in task.train_step(batch).items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        task.train(False)
        val_metrics = task.evaluate(val)
        # Test is read every epoch but only ever reported for the epoch chosen on validation.
        test_metrics = task.evaluate(test) if test is not None else {}
        record = {"epoch": epoch, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
                  "val": val_metrics, "test": test_metrics, "seconds": time.perf_counter() - start}
        result.history.append(record)
        score = val_metrics[task.selection_metric]
        if _better(score, best, task.selection_mode):
            best = score
            result.best_epoch, result.best_val, result.best_test = epoch, val_metrics, test_metrics
            result.best_state = copy.deepcopy(task.state_dict())
        if on_epoch is not None:
            on_epoch(record)
        if patience and epoch - result.best_epoch >= patience:
            result.stopped_early = epoch + 1 < epochs
            break
    return result
