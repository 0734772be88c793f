"""Strategies as data, the paired tests a race decides with, and the race's decisions (no Ray cluster needed)."""

from __future__ import annotations

import itertools
import statistics
from types import SimpleNamespace

import pytest
from scipy import stats

from vdes_tune.errors import BadInputError
from vdes_tune.search.race import evidence, paired_p
from vdes_tune.search.space import load_space, parse_space

BASE = {"arch": 1, "metric": "val_f1", "algorithm": "grid", "fixed": {"train.epochs": 12},
        "parameters": {"train.lr": {"choice": [1e-3, 5e-4]}}}


def test_a_space_without_a_strategy_is_the_fixed_protocol():
    strategy = parse_space({**BASE, "repeats": 3}, "s.yaml").strategy
    assert (strategy.name, strategy.scheduler, strategy.repeats, strategy.seeds_at_start, strategy.unique) == (
        "fixed", "none", 3, 3, False)


def test_noise_aware_preset_and_its_overrides():
    strategy = parse_space({**BASE, "strategy": "noise-aware", "repeats": 8, "race": {"alpha": 0.05}}, "s.yaml").strategy
    assert (strategy.scheduler, strategy.unique, strategy.rung_metric, strategy.first_seeds) == (
        "race", True, "val_roc_auc", 2)
    assert strategy.alpha == 0.05 and strategy.test == "wilcoxon" and strategy.repeats == 8
    assert strategy.rung_key("val_f1") == "best_val_roc_auc" and strategy.rung_mode("val_f1", "max") == "max"
    loss = parse_space({**BASE, "strategy": "noise-aware", "repeats": 4, "asha": {"metric": "val_loss"}}, "s.yaml")
    assert loss.strategy.rung_mode("val_f1", "max") == "min"


def test_a_preset_adapts_to_a_small_space_but_explicit_values_are_checked():
    small = parse_space({**BASE, "strategy": "noise-aware", "repeats": 1, "fixed": {"train.epochs": 2}}, "s.yaml")
    assert small.strategy.first_seeds == 1 and small.strategy.grace_period == 3  # rungs off: grace >= epochs
    with pytest.raises(BadInputError, match="'race.first_seeds'"):
        parse_space({**BASE, "strategy": "noise-aware", "repeats": 1, "race": {"first_seeds": 2}}, "s.yaml")
    with pytest.raises(BadInputError, match="'asha.grace_period'"):
        parse_space({**BASE, "strategy": "noise-aware", "asha": {"grace_period": 20}}, "s.yaml")


@pytest.mark.parametrize("edit, field", [
    ({"strategy": "bohb"}, "strategy"),
    ({"scheduler": "hyperband"}, "scheduler"),
    ({"scheduler": "race", "race": {"test": "sign"}}, "race.test"),
    ({"scheduler": "race", "race": {"alpha": 1.5}}, "race.alpha"),
    ({"race": {"alpha": 0.1}}, "race"),  # race settings without a race
    ({"scheduler": "asha", "asha": {"metric": "test_f1"}}, "asha.metric"),
    ({"unique": "yes"}, "unique"),
])
def test_invalid_strategies_name_the_field(edit, field):
    with pytest.raises(BadInputError) as err:
        parse_space({**BASE, **edit}, "bad.yaml")
    assert "bad.yaml" in str(err.value) and f"'{field}'" in str(err.value)


def test_set_edits_race_fields():
    space = load_space("paper_classifier_lr", ["strategy=noise-aware", "scheduler=race", "race.alpha=0.2",
                                               "race.first_seeds=3"])
    assert (space.strategy.alpha, space.strategy.first_seeds) == (0.2, 3)


def _enumerated_p(diffs: list[float]) -> float:
    """The exact one-sided signed-rank p by brute force: every sign pattern of the ranks of |d| (zeros
    dropped, ties at their average rank), counting patterns whose positive rank sum is at most the observed."""
    d = [x for x in diffs if x != 0]
    ranks = stats.rankdata([abs(x) for x in d])
    observed = sum(r for r, x in zip(ranks, d) if x > 0)
    patterns = list(itertools.product((0, 1), repeat=len(d)))
    return sum(sum(r for r, s in zip(ranks, signs) if s) <= observed + 1e-9 for signs in patterns) / len(patterns)


@pytest.mark.parametrize("diffs, by_hand", [
    ([-0.05, -0.02, -0.04, -0.01], 1 / 16),  # all worse: the smallest p four seeds can give
    ([-0.05, -0.02, -0.04, 0.01], 2 / 16),  # W+ = 1: the patterns {} and {1}
    ([-0.02, -0.02, -0.01, 0.01], 3 / 16),  # tied magnitudes: ranks 3.5, 3.5, 1.5, 1.5; W+ = 1.5
    ([-0.03, 0.0, -0.01, -0.02, -0.04], 1 / 16),  # the zero is dropped
    ([0.03, 0.02], 1.0),
])
def test_wilcoxon_p_equals_the_hand_count(diffs, by_hand):
    assert paired_p(diffs, "wilcoxon") == pytest.approx(by_hand)
    assert paired_p(diffs, "wilcoxon") == pytest.approx(_enumerated_p(diffs))


def test_wilcoxon_matches_scipy_without_ties_and_t_matches_scipy():
    diffs = [-0.031, -0.012, 0.004, -0.027, -0.018, 0.009]
    assert paired_p(diffs, "wilcoxon") == pytest.approx(
        stats.wilcoxon(diffs, alternative="less", method="exact").pvalue)
    a, b = [0.70, 0.72, 0.69, 0.74], [0.73, 0.72, 0.71, 0.76]
    assert paired_p([x - y for x, y in zip(a, b)], "t") == pytest.approx(
        stats.ttest_rel(a, b, alternative="less").pvalue)
    assert paired_p([-0.1], "t") == 1.0 and paired_p([], "wilcoxon") == 1.0


def _trial(tid: str, lr: float) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config={"train.lr": lr}, last_result={})


def _result(scores: dict[int, float], epoch: int = 12) -> dict:
    """A result as Tune hands it to a scheduler: nested dicts flattened to `seed_scores/<seed>`."""
    return {"feasible": 1, "epoch": epoch, "val_f1": statistics.fmean(scores.values()) if scores else 0.0,
            **{f"seed_scores/{s}": v for s, v in scores.items()}}


def test_race_drops_a_point_exactly_when_the_hand_computed_test_says_so(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from vdes_tune.search.race_scheduler import RaceScheduler

    race = RaceScheduler("val_f1", "max", None, first_seeds=2, max_seeds=6, alpha=0.1, test="wilcoxon",
                         log_path=str(tmp_path / "race.json"))
    best, other = _trial("a", 1e-3), _trial("b", 5e-4)
    for t in (best, other):
        race.on_trial_add(None, t)
    incumbent = {0: 0.80, 1: 0.82, 2: 0.79, 3: 0.81, 4: 0.80}
    for n in (2, 3, 4, 5):
        assert race.on_trial_result(None, best, _result({s: incumbent[s] for s in range(n)})) == TrialScheduler.CONTINUE
    challenger = {0: 0.78, 1: 0.80, 2: 0.80, 3: 0.70}
    decisions = []
    for n in (2, 3, 4):
        scores = {s: challenger[s] for s in range(n)}
        diffs = [scores[s] - incumbent[s] for s in range(n)]
        by_hand = _enumerated_p(diffs)
        decision = race.on_trial_result(None, other, _result(scores))
        decisions.append(decision)
        assert decision == (TrialScheduler.STOP if by_hand < 0.1 else TrialScheduler.CONTINUE)
        found = race.events[-1]
        assert found["p_worse"] == pytest.approx(by_hand) and found["n"] == n and found["incumbent"] == "a"
    # Two seeds: W+ = 0 of ranks 1.5, 1.5: p = 1/4; three and four: W+ = 1 (the better third seed): 2/8, 2/16.
    assert decisions == [TrialScheduler.CONTINUE] * 3
    race.on_trial_result(None, other, _result({**challenger, 4: 0.70}))  # five seeds, four clearly worse
    assert race.outcome["b"]["status"] == "dropped" and race.outcome["b"]["p_worse"] < 0.1
    assert race.incumbent() == "a"
    log = (tmp_path / "race.json").read_text()
    assert '"dropped"' in log and "worse than the incumbent" in log


def test_the_incumbent_stops_at_its_last_seed_and_evidence_is_paired_on_shared_seeds():
    from ray.tune.schedulers import TrialScheduler

    from vdes_tune.search.race_scheduler import RaceScheduler

    race = RaceScheduler("val_f1", "max", None, first_seeds=1, max_seeds=2, alpha=0.1, test="t")
    a = _trial("a", 1e-3)
    race.on_trial_add(None, a)
    assert race.on_trial_result(None, a, _result({0: 0.7})) == TrialScheduler.CONTINUE
    assert race.on_trial_result(None, a, _result({0: 0.7, 1: 0.72})) == TrialScheduler.STOP
    assert race.outcome["a"]["status"] == "finished"
    found = evidence({"0": 0.6, "1": 0.7, "5": 0.9}, {"0": 0.7, "1": 0.8}, "max", "t")
    assert found["shared_seeds"] == [0, 1] and found["mean_diff"] == pytest.approx(-0.1)
