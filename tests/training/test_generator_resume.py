"""Generator training resumes: per-epoch checkpoints (weights, optimisers, GAN image pools, every RNG) let a
killed run finish with exactly the weights of an uninterrupted one (CPU, same seed); a checkpoint of another
configuration is not used; `generators train` SIGKILLed mid-run and run again continues and ends the same."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from vdes_tune.config import GeneratorConfig
from vdes_tune.training.generators import CHECKPOINT, run_generator_training

from ..conftest import kill_when

TINY = {"unet": dict(epochs=3, batch_size=8, unet_width=4, unet_depth=3, device="cpu", samples=1),
        "cyclegan": dict(epochs=3, batch_size=4, features=4, blocks=1, disc_features=4, pool_size=3, device="cpu",
                         samples=1),
        "pix2pix": dict(epochs=3, batch_size=4, unet_width=4, unet_depth=3, disc_features=4, disc_layers=2,
                        device="cpu", samples=1)}


class Killed(Exception):
    """Stands for the process dying right after an epoch's checkpoint."""


def _weights(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.name: torch.load(p, weights_only=True) for p in sorted(folder.glob("*.pt"))}


def _timeless(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                        for x, y in zip(a.values(), b.values()))


@pytest.mark.parametrize("model", sorted(TINY))
def test_a_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_weights(model, search_work, tmp_path):
    cfg = GeneratorConfig.for_model(model, seed=5, **TINY[model])
    shards = search_work / "dataset" / "shards"
    straight = run_generator_training(cfg, shards, tmp_path / "straight")

    def die_after_second(record: dict) -> None:
        if record["epoch"] == 1:
            raise Killed

    resume = tmp_path / "resume"
    with pytest.raises(Killed):
        run_generator_training(cfg, shards, tmp_path / "killed", die_after_second, resume, tag="run-a")
    assert torch.load(resume / CHECKPOINT, weights_only=True)["epoch"] == 2
    resumed = run_generator_training(cfg, shards, tmp_path / "resumed", None, resume, tag="run-a")
    assert (straight["resumed_from_epoch"], resumed["resumed_from_epoch"]) == (0, 2)
    assert _timeless(resumed["history"]) == _timeless(straight["history"])
    assert resumed["best_epoch"] == straight["best_epoch"]
    weights = _weights(tmp_path / "straight")
    assert len(weights) == (2 if model != "unet" else 1)  # generator.pt, and cyclegan.pt or discriminator.pt
    assert _same(_weights(tmp_path / "resumed"), weights)

    # A checkpoint of another configuration (or dataset) is never continued.
    other = run_generator_training(cfg, shards, tmp_path / "other", None, resume, tag="run-b")
    assert other["resumed_from_epoch"] == 0 and _same(_weights(tmp_path / "other"), weights)


@pytest.mark.slow
def test_generators_train_sigkilled_mid_run_resumes_to_the_same_weights(search_work, tmp_path):
    """The command itself: killed with SIGKILL once its second epoch is checkpointed, run again, it continues
    there and writes the weights an uninterrupted run writes; no debris is left or trusted."""
    config = tmp_path / "cg.yaml"
    config.write_text(yaml.safe_dump({"model": "cyclegan", **TINY["cyclegan"], "epochs": 4, "seed": 2}))
    works = {}
    for run in ("straight", "killed"):
        works[run] = tmp_path / run
        shutil.copytree(search_work / "dataset", works[run] / "dataset")
    cmd = [sys.executable, "-m", "vdes_tune", "generators", "train", "cyclegan", "--config", str(config),
           "--name", "cg", "--json"]
    subprocess.run([*cmd, "--work", str(works["straight"])], check=True, capture_output=True, timeout=600)

    checkpoint = works["killed"] / "generators" / ".cg.resume" / CHECKPOINT
    # The checkpoint is replaced in one rename, so a file that exists is whole.
    kill_when([*cmd, "--work", str(works["killed"])],
              lambda: checkpoint.is_file() and torch.load(checkpoint, weights_only=True)["epoch"] >= 2)
    finished = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 2 <= finished < 4 and not (works["killed"] / "generators" / "cg").exists()

    again = subprocess.run([*cmd, "--work", str(works["killed"])], check=True, capture_output=True, text=True,
                           timeout=600)
    summary = json.loads(again.stdout)
    assert summary["resumed_from_epoch"] == finished and summary["epochs_run"] == 4
    assert _same(_weights(works["killed"] / "generators" / "cg"), _weights(works["straight"] / "generators" / "cg"))
    leftovers = [p.name for p in (works["killed"] / "generators").iterdir() if p.name != "cg"]
    assert leftovers == []  # the resume folder goes once the run is finished; no temporary folder is left
