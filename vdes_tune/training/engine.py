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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; deterministic kernels where torch has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    if value != value:  # NaN never wins
        return False
    return value > best if mode == "max" else value < best


def fit(task: Task, train: Iterable[Any], val: Iterable[Any], test: Iterable[Any] | None, epochs: int,
        on_epoch: Callable[[dict[str, Any]], None] | None = None) -> FitResult:
    """Train for `epochs`, validate each epoch, keep the epoch with the best validation metric."""
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
    return result
