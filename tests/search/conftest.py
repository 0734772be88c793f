"""A 64-pixel ingest of the small dataset: search trials train in seconds on it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def search_work(ray_local, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Workspace with dataset/shards of 64 x 64 crops."""
    from vdes_tune.config import IngestConfig
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    work = tmp_path_factory.mktemp("searchwork")
    ingest.run(IngestConfig(crop_size=64), Workspace.at(work), small_dataset)
    return work


def write_space(path: Path, **fields) -> Path:
    """A search-space YAML for tests (resnet18, batch 4, 2 epochs unless overridden)."""
    import yaml

    data = {"name": path.stem, "arch": 1, "metric": "val_f1", "mode": "max", "repeats": 1, "algorithm": "grid",
            "fixed": {"train.classifier": "resnet18", "train.epochs": 2, "train.batch_size": 4}}
    data.update(fields)
    path.write_text(yaml.safe_dump(data))
    return path


def zero_overhead_calibration(path: Path) -> Path:
    """A calibration with no fixed overhead, so tiny models give budgets a test can reason about."""
    import json

    path.write_text(json.dumps({"activation_factor": 1.0, "overhead_gb": 0.0, "source": "test"}))
    return path
