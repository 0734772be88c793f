"""Smoke-scale protocol check on the default phantom: LE alone carries the label (it did not before the
signal model), and real DES adds to it, so #3 beats #1 on held-out ROC-AUC by a margin of several standard
errors."""

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
    """Judged on ROC-AUC over both held-out splits (18 + 19 crops), not on a validation F1 margin of about one
    crop. Measured over seeds 0-5: LE's mean AUC 0.75-0.85; real DES adds 0.14-0.20 (sd 0.027), so the 2-seed
    mean's standard error is about 0.02 and the 0.05 bound sits some 6 of them below the mean gain."""
    def held_out(arch: int) -> tuple[float, float]:
        runs = [run_classification(TrainConfig(arch=arch, seed=seed, classifier="resnet18", epochs=8, lr=1e-3,
                                               batch_size=8, device="cpu"), smoke_work) for seed in range(2)]
        auc = float(np.mean([r[split]["roc_auc"] for r in runs for split in ("val", "test")]))
        return auc, float(np.mean([r["val"]["f1"] for r in runs]))

    (le_auc, le_f1), (des_auc, des_f1) = held_out(1), held_out(3)
    assert le_auc > 0.65 and le_f1 > 0.4, (le_f1, le_auc)  # LE alone is informative (measured 0.75+ and 0.8+)
    assert des_auc - le_auc > 0.05, (le_auc, des_auc, le_f1, des_f1)
