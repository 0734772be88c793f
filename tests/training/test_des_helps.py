"""Smoke-scale protocol check on the default phantom: LE alone carries the label (it did not before the
signal model), and real DES adds to it, so #3 beats #1 on validation F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vdes_tune.config import IngestConfig, TrainConfig
from vdes_tune.training.classify import run_classification

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke_work(ray_local, registration_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 40-patient set at 64 px crops: lesions still show, training is 12x cheaper than at 224."""
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    work = tmp_path_factory.mktemp("smoke")
    ingest.run(IngestConfig(crop_size=64), Workspace.at(work), registration_dataset)
    return work


def test_le_learns_and_real_des_adds_to_it(smoke_work: Path) -> None:
    def val(arch: int) -> tuple[float, float]:
        runs = [run_classification(TrainConfig(arch=arch, seed=seed, classifier="resnet18", epochs=8, lr=1e-3,
                                               batch_size=8, device="cpu"), smoke_work) for seed in range(2)]
        return (float(np.mean([r["val"]["f1"] for r in runs])), float(np.mean([r["val"]["roc_auc"] for r in runs])))

    (le_f1, le_auc), (des_f1, des_auc) = val(1), val(3)
    assert le_auc > 0.65 and le_f1 > 0.4, (le_f1, le_auc)  # LE alone is informative
    assert des_f1 > le_f1 + 0.05 and des_auc > le_auc, (le_f1, des_f1, le_auc, des_auc)
