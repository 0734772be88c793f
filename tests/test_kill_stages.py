"""`ingest` and `generators synthesize` SIGKILLed mid-write, then run again: the outputs equal an uninterrupted
run's, and the killed run's temporary folder is neither trusted nor left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import kill_when

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def _rows(folder: Path) -> pd.DataFrame:
    """Every shard row under `folder`, in crop order (files may split rows differently; the rows may not)."""
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"no shards under {folder}"
    frame = pd.concat([pd.read_parquet(f).assign(split=f.parent.name) for f in files], ignore_index=True)
    return frame.sort_values("crop_id").reset_index(drop=True)


def _kill_once_writing(cmd: list[str], parent: Path, final: str) -> None:
    """Run `cmd`, SIGKILL it (and the Ray it started) as soon as its temporary `final` folder exists."""
    def writing() -> bool:
        return parent.is_dir() and any(p.name.startswith(f".{final}.tmp-") for p in parent.iterdir())

    kill_when(cmd, writing, ENV)
    assert not (parent / final).exists() and writing()


def test_ingest_killed_mid_write_then_rerun_equals_an_uninterrupted_run(small_dataset, search_work, tmp_path):
    # The uninterrupted run is the session's: search_work is this dataset ingested at 64 px, defaults otherwise.
    cmd = [sys.executable, "-m", "vdes_tune", "ingest", "--data", str(small_dataset), "--crop-size", "64",
           "--num-cpus", "2"]
    killed = tmp_path / "killed"
    _kill_once_writing([*cmd, "--work", str(killed)], killed, "dataset")
    subprocess.run([*cmd, "--work", str(killed)], env=ENV, check=True, capture_output=True, timeout=600)
    pd.testing.assert_frame_equal(_rows(killed / "dataset" / "shards"), _rows(search_work / "dataset" / "shards"))
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".dataset.")]


def test_synthesize_killed_mid_write_then_rerun_equals_an_uninterrupted_run(search_work, tmp_path):
    from vdes_tune.config import GeneratorConfig
    from vdes_tune.stages import generators
    from vdes_tune.workspace import Workspace

    tiny = {"model": "unet", "epochs": 1, "batch_size": 8, "unet_width": 4, "unet_depth": 3, "device": "cpu",
            "samples": 1}
    works = {run: tmp_path / run for run in ("straight", "killed")}
    for work in works.values():
        shutil.copytree(search_work / "dataset", work / "dataset")
    # The uninterrupted run in this process (the session's Ray, 2 CPUs as the CLI's --num-cpus 2 below).
    straight = Workspace.at(works["straight"])
    generators.train(GeneratorConfig.for_model(**tiny), straight, "g")
    generators.synthesize("g", straight, batch_size=4)
    shutil.copytree(works["straight"] / "generators", works["killed"] / "generators")  # the same weights
    synth = [sys.executable, "-m", "vdes_tune", "generators", "synthesize", "g", "--num-cpus", "2",
             "--batch-size", "4", "--work", str(works["killed"])]
    _kill_once_writing(synth, works["killed"] / "vdes", "g")
    subprocess.run(synth, env=ENV, check=True, capture_output=True, timeout=600)
    pd.testing.assert_frame_equal(_rows(works["killed"] / "vdes" / "g"), _rows(works["straight"] / "vdes" / "g"))
    assert not [p.name for p in (works["killed"] / "vdes").iterdir() if p.name != "g"]
