"""Tiny generator folders saved the way `stages.generators.train` saves them (random weights, no training)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from vdes_tune.config import GeneratorConfig, config_hash, to_dict, to_yaml
from vdes_tune.training.generators import WEIGHTS, build_generator
from vdes_tune.workspace import SCHEMA_VERSION

TINY = {"unet": dict(unet_width=4, unet_depth=3, unet_dropout=0.0),
        "cyclegan": dict(features=4, blocks=1)}


def save_generator(work: Path, name: str, model: str = "unet", crop_size: int | None = 64,
                   seed: int = 0) -> GeneratorConfig:
    """generators/<name>/ with config.yaml, generator.pt, metrics.json and a complete manifest."""
    cfg = GeneratorConfig.for_model(model, **TINY[model])
    torch.manual_seed(seed)
    network = build_generator(cfg)
    for module in network.modules():  # BatchNorm that is not the identity, so padding and tiling show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    folder = work / "generators" / name
    folder.mkdir(parents=True)
    torch.save(network.state_dict(), folder / WEIGHTS)
    (folder / "config.yaml").write_text(to_yaml(cfg))
    split = {"l1": 0.1, "mse": 0.02, "psnr": 17.0, "ssim": 0.5, "n": 3}
    (folder / "metrics.json").write_text(json.dumps({"val": split, "test": split, "best_epoch": 0, "epochs_run": 1,
                                                     "crops": {"train": 10, "val": 3, "test": 3}}))
    manifest = {"schema_version": SCHEMA_VERSION, "stage": "generators.train", "name": name,
                "config": to_dict(cfg), "config_hash": config_hash(cfg), "inputs": {}, "created_unix": time.time(),
                "complete": True}
    if crop_size:
        manifest["crop_size"] = crop_size
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return cfg


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A workspace with generators/unet (U-Net 4/3) and generators/cyclegan (ResNet 4 features, 1 block)."""
    root = tmp_path / "work"
    save_generator(root, "unet", "unet")
    save_generator(root, "cyclegan", "cyclegan")
    return root
