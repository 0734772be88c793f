"""A real search on CPU with the session's Ray: trials, infeasible configs, lockstep repeats, export."""

from __future__ import annotations

import json
import statistics

import pandas as pd
import pytest
import torch
import yaml

from tests.search.conftest import write_space, zero_overhead_calibration
from vdes_tune.config import TrainConfig
from vdes_tune.search.export import export, read_best
from vdes_tune.search.runner import SearchOptions, run_search
from vdes_tune.search.space import load_space
from vdes_tune.training.memory import GIB, estimate, load_calibration

pytestmark = pytest.mark.ray


def test_search_runs_reports_infeasible_and_exports(search_work, tmp_path):
    cal_path = zero_overhead_calibration(tmp_path / "cal.json")
    cal = load_calibration(cal_path)
    small = estimate(TrainConfig(arch=1, classifier="resnet18", batch_size=4), 64, cal).total / GIB
    large = estimate(TrainConfig(arch=1, classifier="resnet18", batch_size=32), 64, cal).total / GIB
    budget = (small + large) / 2 / 0.9  # batch 4 fits, batch 32 does not
    space = load_space(write_space(tmp_path / "smoke.yaml", repeats=2, parameters={
        "train.lr": {"choice": [1.0e-3, 1.0e-4]}, "train.batch_size": {"choice": [4, 32]}},
        fixed={"train.classifier": "resnet18", "train.epochs": 2}))
    summary = run_search(space, search_work, SearchOptions(gpu_memory_gb=budget, calibration=str(cal_path)))
    assert (summary["trials"], summary["finished"], summary["infeasible"], summary["errored"]) == (4, 4, 2, 0)

    out = export("smoke", search_work)
    board = pd.read_csv(out["leaderboard"])
    assert sorted(zip(board["train.lr"], board["train.batch_size"])) == sorted(
        [(1e-3, 4), (1e-3, 32), (1e-4, 4), (1e-4, 32)])
    infeasible = board[board["train.batch_size"] == 32]
    assert (infeasible["feasible"] == 0).all() and (infeasible["val_f1"] == 0).all()
    assert (infeasible["epochs"] == 0).all()  # never trained
    feasible = board[board["feasible"] == 1].sort_values("rank")
    assert (feasible["epochs"] == 2).all() and list(feasible["rank"]) == [1, 2]
    assert feasible["val_f1"].is_monotonic_decreasing

    # The objective is the mean over the repeat seeds of what a plain run of each seed selects.
    torch.set_num_threads(1)  # trials run with one thread: the same kernels give the same numbers
    from vdes_tune.training.classify import run_classification
    try:
        for _, row in feasible.iterrows():
            cfg = TrainConfig(arch=1, classifier="resnet18", epochs=2, batch_size=4, lr=float(row["train.lr"]))
            runs = [run_classification(TrainConfig(**{**cfg.__dict__, "seed": s}), search_work) for s in (0, 1)]
            assert row["val_f1"] == pytest.approx(statistics.fmean(r["val"]["f1"] for r in runs), abs=1e-9)
            assert row["val_accuracy"] == pytest.approx(statistics.fmean(r["val"]["accuracy"] for r in runs))
            assert json.loads(row["seed_scores"]) == pytest.approx({str(s): r["val"]["f1"] for s, r in zip((0, 1), runs)})
    finally:
        torch.set_num_threads(2)

    best = read_best(out["best"])
    top = feasible.iloc[0]
    assert list(best) == [1] and best[1].lr == pytest.approx(top["train.lr"]) and best[1].batch_size == 4
    doc = yaml.safe_load(open(out["best"]))
    assert doc["provenance"]["trials"] == {"total": 4, "finished": 4, "infeasible": 2, "errored": 0}
    assert doc["architectures"][1]["objective"]["seeds"] == [0, 1]
    assert not [c for c in board.columns if c.startswith("test_")]  # a search reports validation only
    # TensorBoard event files from Ray's default loggers, one per trial.
    assert len(list((search_work / "search" / "smoke").glob("trial_*/events.out.tfevents.*"))) == 4


def test_rerunning_a_finished_search_resumes_without_new_trials(search_work, tmp_path):
    space = load_space(write_space(tmp_path / "again.yaml", parameters={"train.lr": {"choice": [1.0e-3]}},
                                   fixed={"train.classifier": "resnet18", "train.epochs": 1, "train.batch_size": 4}))
    store = (tmp_path / "store").as_uri()  # storage given as a URI, not a path
    first = run_search(space, search_work, SearchOptions(storage=store))
    second = run_search(space, search_work, SearchOptions(storage=store))
    assert (tmp_path / "store" / "again" / "vdes_search.json").is_file()
    assert not first["resumed"] and second["resumed"]
    assert second["trials"] == 1 and second["best"]["trial_id"] == first["best"]["trial_id"]
    changed = load_space(write_space(tmp_path / "again.yaml", parameters={"train.lr": {"choice": [1.0e-2]}}))
    with pytest.raises(Exception, match="another search space"):
        run_search(changed, search_work, SearchOptions(storage=store))
    assert export("again", search_work, storage=store)["finished"] == 1


def test_export_of_a_missing_experiment_is_a_clear_error(search_work):
    from vdes_tune.errors import BadInputError

    with pytest.raises(BadInputError, match="not a vdes-tune search experiment"):
        export("nothing-here", search_work)


def test_mlflow_tracking_to_a_local_file_store(search_work, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store only on request
    space = load_space(write_space(tmp_path / "tracked.yaml", parameters={"train.lr": {"choice": [1.0e-3]}},
                                   fixed={"train.classifier": "resnet18", "train.epochs": 1, "train.batch_size": 4}))
    uri = (tmp_path / "mlruns").as_uri()
    summary = run_search(space, search_work, SearchOptions(mlflow_uri=uri))
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    # One epoch: the run's last logged value is the search's own best result.
    assert len(runs) == 1 and runs[0].data.metrics["val_f1"] == pytest.approx(summary["best"]["val_f1"])
    assert runs[0].data.metrics["val_roc_auc"] == pytest.approx(summary["best"]["val_roc_auc"])
    assert float(runs[0].data.params["train.lr"]) == 1e-3


def test_a_search_never_reads_the_test_split(search_work, tmp_path):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(search_work / "dataset", work / "dataset")
    test_shards = sorted((work / "dataset" / "shards" / "split=test").glob("*.parquet"))
    assert test_shards
    for shard in test_shards:  # same size (the cheap integrity check passes), unreadable content
        shard.write_bytes(b"\0" * shard.stat().st_size)
    space = load_space(write_space(tmp_path / "notest.yaml", repeats=2, parameters={"train.lr": {"choice": [1e-3]}},
                                   fixed={"train.classifier": "resnet18", "train.epochs": 1, "train.batch_size": 4}))
    summary = run_search(space, work, SearchOptions())
    assert (summary["finished"], summary["errored"]) == (1, 0)
    assert not [k for k in summary["best"] if k.startswith("test_")]


def test_the_shipped_joint_space_runs_through_tune(search_work, tmp_path):
    space = load_space("joint", ["num_samples=2", "repeats=1", "seed=3", "train.epochs=2", "train.batch_size=4",
                                 "asha.grace_period=1"])
    summary = run_search(space, search_work, SearchOptions(storage=str(tmp_path / "store")))
    assert (summary["trials"], summary["finished"], summary["errored"]) == (2, 2, 0)
    out = export("joint", search_work, storage=str(tmp_path / "store"))
    best = read_best(out["best"])
    assert list(best) == [5] and best[5].unet_width in (4, 8, 12, 16, 32, 64)


def test_a_live_race_trains_one_more_seed_per_round_in_trials_of_their_own(search_work, tmp_path):
    space = load_space(write_space(tmp_path / "race.yaml", strategy="noise-aware", repeats=3,
                                   race={"first_seeds": 1, "alpha": 0.1, "budget": 0},
                                   parameters={"train.lr": {"choice": [1e-3, 1e-4]}},
                                   fixed={"train.classifier": "resnet18", "train.epochs": 1, "train.batch_size": 4}))
    summary = run_search(space, search_work, SearchOptions(storage=str(tmp_path / "store")))
    assert summary["errored"] == 0
    from vdes_tune.search.export import leaderboard, load_experiment

    exp = load_experiment(str(tmp_path / "store" / "race"))
    starts = sorted((t.config["train.lr"], t.config["_seed_start"], t.config["_seed_count"]) for t in exp.trials)
    # No rungs (1 epoch), no budget, no test can drop a point on fewer than 2 seeds: both points race to 3 seeds.
    assert starts == [(1e-4, 0, 1), (1e-4, 1, 1), (1e-4, 2, 1), (1e-3, 0, 1), (1e-3, 1, 1), (1e-3, 2, 1)]
    board = leaderboard(exp)
    assert list(board["seeds"]) == [3, 3] and set(board["race"]) <= {"finished", "dropped"}
    assert all(set(json.loads(s)) == {"0", "1", "2"} for s in board["seed_scores"])
    assert exp.race["settings"]["max_seeds"] == 3 and board["seed_epochs"].sum() == 6
