"""CUDA path of the loop: channels_last, bf16 autocast, the same losses as on CPU (skipped without a GPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from vdes_tune.models.architectures import get_architecture
from vdes_tune.models.classifiers import build_classifier
from vdes_tune.models.cyclegan import CycleGAN
from vdes_tune.models.unet import UNet
from vdes_tune.training.engine import seed_everything
from vdes_tune.training.gan import CycleGANTask
from vdes_tune.training.tasks import ClassificationTask, TranslationTask

pytestmark = pytest.mark.gpu


def _batch(n: int = 4, size: int = 64) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {s: torch.rand(n, 1, size, size, generator=g) for s in ("le", "led", "des")}, torch.tensor([0, 1] * (n // 2))


def test_cuda_tasks_use_channels_last_and_match_cpu_losses() -> None:
    seed_everything(0)
    batch = _batch()
    unet = UNet(8, 3, 0.0)
    cpu, gpu = TranslationTask(copy.deepcopy(unet), 1e-3, torch.device("cpu")), TranslationTask(
        unet, 1e-3, torch.device("cuda"))
    assert next(p for p in gpu.generator.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last)
    assert torch.backends.cudnn.benchmark
    # bf16 autocast: the first loss agrees with fp32 on CPU to bf16 precision.
    assert gpu.train_step(batch)["loss"] == pytest.approx(cpu.train_step(batch)["loss"], rel=2e-2)

    task = ClassificationTask(get_architecture(3), build_classifier("resnet18", dropout=0.0), 1e-3,
                              torch.device("cuda"))
    losses = [task.train_step(batch)["loss"] for _ in range(20)]
    assert losses[-1] < losses[0]
    metrics = task.evaluate([batch])
    assert metrics["n"] == 4

    gan = CycleGANTask(CycleGAN(8, 1, 8), 2e-4, torch.device("cuda"), pool_size=2)
    out = gan.train_step(batch)
    assert all(v == v for v in out.values())  # no NaN under bf16


@pytest.mark.gpu
def test_shipped_memory_estimate_is_not_below_a_measured_peak():
    """The conservative default calibration never underestimates by more than 5%."""
    from vdes_tune.config import TrainConfig
    from vdes_tune.training.memory import estimate, measure_peak

    cfg = TrainConfig(arch=1, classifier="resnet18", batch_size=8, device="cuda")
    row = measure_peak(cfg, input_size=96)
    assert estimate(cfg, 96).total >= 0.95 * row["measured_bytes"]
