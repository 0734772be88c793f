"""Helpers of the search tests (the 64-pixel workspace `search_work` is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path



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
