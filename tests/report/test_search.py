"""The search, visualised: an Optuna study rebuilt from trial records keeps every trial's state, value and
parameters, and Optuna's fANOVA importance singles out the parameter that drives the objective."""

from __future__ import annotations

import numpy as np
from optuna.trial import TrialState

from vdes_tune.report import search as search_report
from vdes_tune.search.export import Experiment, TrialRecord
from vdes_tune.search.space import parse_space

SPACE = {"arch": 1, "metric": "val_f1", "mode": "max", "algorithm": "random", "num_samples": 16,
         "fixed": {"train.epochs": 4},
         "parameters": {"train.lr": {"loguniform": [1.0e-5, 1.0e-2]}, "train.dropout": {"uniform": [0.0, 0.5]},
                        "train.classifier": {"choice": ["resnet18"]}}}


def experiment(rows: list[tuple[str, str, dict, dict]]) -> Experiment:
    space = parse_space(SPACE, "space.yaml", name="toy")
    return Experiment("/nowhere/toy", {"experiment": "toy"}, space,
                      [TrialRecord(tid, status, config, result) for tid, status, config, result in rows])


def test_rebuilt_study_keeps_states_values_and_order() -> None:
    rows = [("t_00002", "TERMINATED", {"train.lr": 1e-3, "train.dropout": 0.1}, {"val_f1": 0.7, "epoch": 4}),
            ("t_00000", "TERMINATED", {"train.lr": 1e-4, "train.dropout": 0.2}, {"val_f1": 0.5, "epoch": 1}),
            ("t_00001", "ERROR", {"train.lr": 1e-2, "train.dropout": 0.3}, {}),
            ("t_00003", "TERMINATED", {"train.lr": 1e-5, "train.dropout": 0.4},
             {"val_f1": -1.0, "epoch": 0, "feasible": 0})]
    study = search_report.rebuild_study(experiment(rows))
    assert [t.user_attrs["trial_id"] for t in study.trials] == ["t_00000", "t_00001", "t_00002", "t_00003"]
    states = [t.state for t in study.trials]
    assert states == [TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[0].intermediate_values == {1: 0.5}  # stopped by the scheduler after epoch 1
    assert study.best_trial.params == {"train.lr": 1e-3, "train.dropout": 0.1} and study.best_value == 0.7
    assert "train.classifier" not in study.best_trial.params  # a one-value choice is not a searched parameter


def test_importance_finds_the_parameter_that_drives_the_objective() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        lr, dropout = float(10 ** rng.uniform(-5, -2)), float(rng.uniform(0, 0.5))
        value = 0.9 - 0.1 * abs(np.log10(lr) + 3) + 0.005 * rng.normal()  # best at lr 1e-3; dropout inert
        rows.append((f"t_{i:05d}", "TERMINATED", {"train.lr": lr, "train.dropout": dropout},
                     {"val_f1": value, "epoch": 4}))
    study = search_report.rebuild_study(experiment(rows))
    table, why = search_report.importances(study)
    assert not why
    found = dict(zip(table["parameter"], table["importance"]))
    assert found["train.lr"] > 0.8 > found["train.dropout"]
    assert set(search_report.figures(study)) == {"search_history.png", "search_parallel.png",
                                               "search_importance.png"}


def test_a_two_trial_search_draws_no_meaningless_figures_and_says_why() -> None:
    rows = [("t_00000", "TERMINATED", {"train.lr": 1e-3, "train.dropout": 0.1}, {"val_f1": 0.7, "epoch": 4}),
            ("t_00001", "TERMINATED", {"train.lr": 1e-4, "train.dropout": 0.3}, {"val_f1": 0.6, "epoch": 4})]
    study = search_report.rebuild_study(experiment(rows))
    table, why = search_report.importances(study)
    assert table.empty and "2 complete trial(s) for 2 parameters" in why and "need 8" in why
    notes = search_report.figure_notes(study)
    assert set(notes) == {"search_parallel.png", "search_importance.png"}
    assert set(search_report.figures(study)) == {"search_history.png"}
    one = [(f"t_{i:05d}", "TERMINATED", {"train.lr": 10 ** -(2 + i / 4), "train.dropout": 0.1},
            {"val_f1": 0.5 + i / 100, "epoch": 4}) for i in range(12)]
    assert "single parameter is 1 by definition" in search_report.importances(
        search_report.rebuild_study(experiment(one)))[1]


def test_the_report_says_when_a_rung_stood_down() -> None:
    from dataclasses import replace

    rows = [("t_00000", "TERMINATED", {"train.lr": 1e-3, "train.dropout": 0.1},
             {"val_f1": 0.7, "epoch": 4, "feasible": 1, "seed_scores": {"0": 0.7}})]
    race = {"over": True, "points": {}, "events": [
        {"action": "rung stood down", "epoch": 3, "why": "Spearman 0.40 over 5 finished points is below 0.6"}]}
    lines = search_report.choices(replace(experiment(rows), race=race), search_report.leaderboard(experiment(rows)))
    assert lines[-1] == ("The epoch rung at epoch 3 stood down: Spearman 0.40 over 5 finished points is below 0.6; "
                         "the points it had stopped were trained again from the start.")
