"""Resume after the driver is SIGKILLed, and fractional-GPU packing on a logical GPU (subprocesses)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import kill_when, wait_gone
from tests.search.conftest import write_space, zero_overhead_calibration
from vdes_tune.config import TrainConfig
from vdes_tune.search.export import result_rows
from vdes_tune.training.memory import estimate, load_calibration, place

pytestmark = pytest.mark.ray
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _results(trial_dir: Path) -> list[dict]:
    return result_rows(trial_dir / "result.json")


def test_killed_search_resumes_without_duplicates_or_gaps(search_work, tmp_path):
    from ray.tune import ExperimentAnalysis

    space = write_space(tmp_path / "killed.yaml", parameters={"train.lr": {"choice": [1.0e-3, 5.0e-4, 1.0e-4]}},
                        fixed={"train.classifier": "resnet18", "train.epochs": 2, "train.batch_size": 4})
    cmd = [sys.executable, "-m", "vdes_tune", "search", str(space), "--work", str(search_work), "--max-concurrent", "1"]
    exp = search_work / "search" / "killed"
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, finished, partial = time.monotonic() + 300, None, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            progress = {d: _results(d) for d in exp.glob("trial_*")}
            finished = next((d for d, r in progress.items() if r and r[-1]["epoch"] == 2), None)
            partial = next((d for d, r in progress.items() if r and r[-1]["epoch"] < 2), None)
            if finished and partial:
                break
            time.sleep(0.2)
        assert finished and partial, "the search never reached 'one trial done, one mid-way'"
        before = (finished / "result.json").read_text()
        os.killpg(proc.pid, signal.SIGKILL)  # the command and the local Ray it started, mid-search
        proc.wait()
    finally:
        wait_gone(proc.pid)

    # `status` sees the experiment unfinished, and its repair is the command that resumes it.
    mid = _search_status(search_work, exp)
    # Tune saves its state every 2 s, so the trial that just finished may not be counted yet.
    assert mid["state"] == "incomplete" and re.match(r"[0-2] of 3 trials finished", mid["detail"]), mid
    assert mid["repair"] == f"vdes-tune search {space} --work {search_work} --name killed (resumes it)"

    again = subprocess.run(cmd + ["--json"], env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = json.loads(again.stdout[again.stdout.index("{"):])
    assert summary["resumed"] and summary["finished"] == 3 and summary["errored"] == 0

    trials = ExperimentAnalysis(str(exp)).trials
    lrs = sorted(t.config["train.lr"] for t in trials)
    assert lrs == [1e-4, 5e-4, 1e-3]  # every grid point exactly once
    assert all(t.status == "TERMINATED" and t.last_result["epoch"] == 2 for t in trials)
    assert (finished / "result.json").read_text() == before  # the finished trial was not run again
    epochs = [r["epoch"] for r in _results(partial)]
    assert epochs[-1] == 2 and epochs[0] == 1 and max(epochs.count(e) for e in set(epochs)) <= 2
    done = _search_status(search_work, exp)
    assert (done["state"], done["detail"], done["repair"]) == ("done", "3 trials finished", "")

    # Another ingest of the dataset makes it stale: a restore would refuse it, so the repair starts over.
    copy = tmp_path / "work"
    shutil.copytree(search_work / "dataset", copy / "dataset")
    shutil.copytree(exp, copy / "search" / "killed")
    manifest = json.loads((copy / "dataset" / "manifest.json").read_text())
    (copy / "dataset" / "manifest.json").write_text(json.dumps({**manifest, "inputs_hash": "another-ingest"}))
    stale = _search_status(copy, copy / "search" / "killed")
    assert stale["state"] == "stale" and "earlier ingest" in stale["detail"]
    assert stale["repair"].startswith(f"delete {copy / 'search' / 'killed'}, then vdes-tune search {space}")


def _search_status(work: Path, experiment: Path) -> dict:
    """`vdes-tune status`'s entry for one search experiment."""
    from vdes_tune.status import workspace_status

    return {s["path"]: s for s in workspace_status(work)["stages"]}[str(experiment)]


PACKING_SCRIPT = """
import sys
from pathlib import Path
import ray
from vdes_tune.search.runner import SearchOptions, run_search
from vdes_tune.search.space import load_space
# One logical GPU whose memory the node advertises, as a local vdes-tune run does for a real card.
ray.init(address="local", num_cpus=4, num_gpus=1, resources={"gpu_memory_mib": float(sys.argv[3])},
         include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning")
run_search(load_space(sys.argv[1]), Path(sys.argv[2]), SearchOptions(calibration=sys.argv[4]))
"""


def test_trials_request_their_estimated_fraction_and_never_overfill_the_gpu(search_work, tmp_path):
    from ray.tune import ExperimentAnalysis

    cal_path = zero_overhead_calibration(tmp_path / "cal.json")
    cal = load_calibration(cal_path)
    est = {bs: estimate(TrainConfig(arch=1, classifier="resnet18", batch_size=bs), 64, cal).total for bs in (4, 8)}
    card_mib = math.ceil(est[4] / 1024 ** 2 / (0.9 * 0.495))  # batch 4 needs half of the card; batch 8 more
    card = card_mib / 1024
    expected = {bs: place(e, card, card).fraction for bs, e in est.items()}
    assert expected[4] == 0.5 and 0.5 < expected[8] < 1
    space = write_space(tmp_path / "packing.yaml", parameters={
        "train.lr": {"choice": [1.0e-3, 1.0e-4]}, "train.batch_size": {"choice": [4, 8]}},
        fixed={"train.classifier": "resnet18", "train.epochs": 2})
    run = subprocess.run([sys.executable, "-c", PACKING_SCRIPT, str(space), str(search_work), str(card_mib),
                          str(cal_path)], env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    trials = ExperimentAnalysis(str(search_work / "search" / "packing")).trials
    assert len(trials) == 4 and all(t.status == "TERMINATED" for t in trials)
    spans = []
    for t in trials:
        asked = t.placement_group_factory.required_resources
        fraction = expected[t.config["train.batch_size"]]
        assert asked.get("GPU") == fraction  # exactly the estimate's fraction of the card the node advertises
        assert asked.get("gpu_memory_mib") == math.ceil(fraction * card * 1024)  # and its memory
        results = _results(Path(t.path))
        spans.append((results[0]["trial_start"], results[-1]["report_time"], asked["GPU"]))
    # At every moment the trials holding the GPU fit in it.
    for start, _, _ in spans:
        load = sum(f for s, e, f in spans if s <= start <= e)
        assert load <= 1.0 + 1e-9


@pytest.mark.slow
def test_a_race_whose_driver_is_killed_mid_race_resumes_to_the_uninterrupted_export(ray_local, search_work, tmp_path):
    """The race's state lives in the searcher Tune checkpoints (the scheduler holds the searcher, so its rungs
    read the restored race too): a driver SIGKILLed after the race has decided a round, run again, ends with the
    export of a run that was never killed."""
    import pandas as pd
    import yaml

    from vdes_tune.config import SearchOptions
    from vdes_tune.search.export import export
    from vdes_tune.search.runner import run_search
    from vdes_tune.search.space import load_space

    work = tmp_path / "work"
    shutil.copytree(search_work / "dataset", work / "dataset")
    space = write_space(tmp_path / "race.yaml", strategy="noise-aware", repeats=4,
                        parameters={"train.lr": {"choice": [1.0e-3, 5.0e-4, 1.0e-4, 5.0e-5]}},
                        fixed={"train.classifier": "resnet18", "train.epochs": 4, "train.batch_size": 4},
                        asha={"grace_period": 2, "reduction_factor": 2, "guard": "hedge"},
                        race={"first_seeds": 2, "test": "t", "delta": 0.02, "budget": 0})
    run_search(load_space(space), work, SearchOptions(name="straight", max_concurrent=1))

    cmd = [sys.executable, "-m", "vdes_tune", "search", str(space), "--work", str(work), "--name", "killed",
           "--max-concurrent", "1"]
    record = work / "search" / "killed" / "race" / "race.json"

    def mid_race() -> bool:  # a round decided, the race not over
        try:
            race = json.loads(record.read_text())
        except (OSError, ValueError):
            return False
        return race["round"] >= 3 and not race["over"]

    kill_when(cmd, mid_race, ENV)
    again = subprocess.run(cmd + ["--json"], env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout[again.stdout.index("{"):])["resumed"]

    def exported(name: str) -> tuple[dict, list]:
        doc = yaml.safe_load(Path(export(name, work)["best"]).read_text())
        board = pd.read_csv(work / "best" / f"{name}-leaderboard.csv")
        return doc["architectures"], sorted(board[["train.lr", "seeds", "race"]].itertuples(index=False, name=None))

    straight, killed = exported("straight"), exported("killed")
    assert killed[0][1]["searched"] == straight[0][1]["searched"]
    assert killed[0][1]["objective"]["seed_scores"] == straight[0][1]["objective"]["seed_scores"]
    assert killed[1] == straight[1]  # every point: its seeds and what the race decided
    assert {status for _, _, status in straight[1]} >= {"finished", "dropped"}  # the race decided something
