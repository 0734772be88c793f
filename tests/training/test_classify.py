"""One training loop: determinism, frozen vs co-trained generators, overfitting, the train command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

from vdes_tune.cli import app
from vdes_tune.config import TrainConfig
from vdes_tune.errors import BadInputError
from vdes_tune.models.architectures import get_architecture
from vdes_tune.models.classifiers import build_classifier
from vdes_tune.models.unet import UNet
from vdes_tune.training.classify import run_classification
from vdes_tune.training.engine import fit, seed_everything
from vdes_tune.training.tasks import ClassificationTask

pytestmark = pytest.mark.ray

FAST = dict(classifier="resnet18", epochs=2, batch_size=8, unet_width=4, unet_depth=3)


def test_same_seed_same_metrics(search_work: Path) -> None:
    shards = search_work  # 64-pixel crops: the same code path at a twelfth of the cost of 224
    a = run_classification(TrainConfig(arch=3, seed=5, **FAST), shards)
    b = run_classification(TrainConfig(arch=3, seed=5, **FAST), shards)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert a["val"] == b["val"] and a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    c = run_classification(TrainConfig(arch=3, seed=6, **FAST), shards)
    assert [h["train_loss"] for h in c["history"]] != [h["train_loss"] for h in a["history"]]


def test_test_metrics_come_from_the_best_validation_epoch(search_work: Path) -> None:
    out = run_classification(TrainConfig(arch=1, seed=1, **{**FAST, "epochs": 3}), search_work)
    val = [h["val"] for h in out["history"]]
    # Highest F1; ties go to the higher ROC-AUC, then the lower loss (never simply to the earliest epoch).
    expected = max(range(len(val)), key=lambda i: (val[i]["f1"], val[i]["roc_auc"], -val[i]["loss"]))
    assert out["best_epoch"] == expected
    assert out["test"] == out["history"][out["best_epoch"]]["test"]


def test_end_to_end_trains_the_unet_and_pretrained_stays_frozen(search_work: Path, tmp_path: Path) -> None:
    shards = search_work
    torch.manual_seed(0)
    unet = UNet(4, 3, 0.2)
    torch.save(unet.state_dict(), tmp_path / "unet.pt")
    cfg = dict(FAST, epochs=1)
    run_classification(TrainConfig(arch=4, generator_weights=str(tmp_path / "unet.pt"), **cfg), shards, tmp_path / "r4")
    frozen = torch.load(tmp_path / "r4" / "best.pt", weights_only=True)["generator"]
    assert all(torch.equal(frozen[k], v) for k, v in unet.state_dict().items())
    run_classification(TrainConfig(arch=5, recon_weight=0.5, **cfg), shards, tmp_path / "r5")
    history = json.loads((tmp_path / "r5" / "metrics.json").read_text())["history"]
    assert "train_recon" in history[0]
    with pytest.raises(BadInputError, match="needs a virtual DES"):
        run_classification(TrainConfig(arch=6, **cfg), shards)


def test_classifier_fits_a_small_separable_set() -> None:
    seed_everything(0)
    n, size = 16, 32
    labels = torch.arange(n) % 2
    le = torch.rand(n, 1, size, size) * 0.3
    le[labels == 1, :, 12:20, 12:20] += 0.6  # malignant crops carry a bright blob
    loader = DataLoader(TensorDataset(le, labels), batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    batches = [({"le": x, "led": x, "des": x}, y) for x, y in loader]
    task = ClassificationTask(get_architecture(1), build_classifier("resnet18", dropout=0.0), 1e-3,
                              torch.device("cpu"))
    result = fit(task, batches * 4, batches, None, epochs=6)
    assert result.best_val["accuracy"] == 1.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_train_command_writes_metrics(ingested_small: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--arch", "2", "--work", str(ingested_small), "--epochs", "1",
                                      "--classifier", "resnet18", "--batch-size", "8", "--out", str(tmp_path / "run"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["arch_name"] == "LE+LED+LE" and summary["config"]["seed"] == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val"] == summary["val"]
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "best.pt").is_file()


def test_train_command_defaults_pretrained_architectures_to_their_vdes_set(ingested_small: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--arch", "6", "--work", str(ingested_small), "--epochs", "1"])
    assert isinstance(result.exception, BadInputError)
    assert "vdes/cyclegan/split=train: no virtual DES shards" in str(result.exception)
