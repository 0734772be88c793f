"""Strategies as data, the paired tests a race decides with, and the race's decisions (no Ray cluster needed)."""

from __future__ import annotations

import itertools
import json
import statistics

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
        "race", True, "val_roc_auc", 1)
    assert strategy.alpha == 0.05 and strategy.test == "wilcoxon" and strategy.repeats == 8
    assert strategy.rung_key("val_f1") == "best_val_roc_auc" and strategy.rung_mode("val_f1", "max") == "max"
    loss = parse_space({**BASE, "strategy": "noise-aware", "repeats": 4, "asha": {"metric": "val_loss"}}, "s.yaml")
    assert loss.strategy.rung_mode("val_f1", "max") == "min"


def test_a_preset_adapts_to_a_small_space_but_explicit_values_are_checked():
    small = parse_space({**BASE, "strategy": "noise-aware", "repeats": 1, "fixed": {"train.epochs": 1}}, "s.yaml")
    assert small.strategy.first_seeds == 1 and small.strategy.rung_epochs(1) == ()  # half of 1 epoch: no rung
    with pytest.raises(BadInputError, match="'race.first_seeds'"):
        parse_space({**BASE, "strategy": "noise-aware", "repeats": 1, "race": {"first_seeds": 2}}, "s.yaml")
    with pytest.raises(BadInputError, match="'asha.grace_period'"):
        parse_space({**BASE, "strategy": "noise-aware", "asha": {"grace_period": 20}}, "s.yaml")


@pytest.mark.parametrize("epochs, rungs", [(12, (6,)), (30, (15,)), (5, (2,)), (1, ())])
def test_the_noise_aware_rung_sits_at_half_the_epochs_unless_the_space_says_where(epochs, rungs):
    space = parse_space({**BASE, "strategy": "noise-aware", "repeats": 4, "fixed": {"train.epochs": epochs}}, "s.yaml")
    assert space.strategy.rung_epochs(epochs) == rungs and space.strategy.reduction_factor == 2
    given = parse_space({**BASE, "strategy": "noise-aware", "repeats": 4, "fixed": {"train.epochs": 30},
                         "asha": {"grace_period": 5}}, "s.yaml")
    assert given.strategy.rung_epochs(30) == (5,)
    with pytest.raises(BadInputError, match="'asha.grace_fraction'"):
        parse_space({**BASE, "strategy": "noise-aware", "asha": {"grace_fraction": 1.5}}, "s.yaml")


@pytest.mark.parametrize("edit, field", [
    ({"strategy": "bohb"}, "strategy"),
    ({"scheduler": "hyperband"}, "scheduler"),
    ({"scheduler": "race", "race": {"test": "sign"}}, "race.test"),
    ({"scheduler": "race", "race": {"alpha": 1.5}}, "race.alpha"),
    ({"race": {"alpha": 0.1}}, "race"),  # race settings without a race
    ({"scheduler": "asha", "asha": {"metric": "test_f1"}}, "asha.metric"),
    ({"unique": "yes"}, "unique"),
    ({"scheduler": "race", "asha": {"brackets": 2}}, "asha.brackets"),  # Ray's Hyperband is an asha option
    ({"scheduler": "asha", "asha": {"guard": "hedge"}}, "asha.guard"),  # a guard is a race's
    ({"scheduler": "race", "asha": {"guard": "maybe"}}, "asha.guard"),
    ({"scheduler": "race", "race": {"budget": 0.5}}, "race.budget"),  # cannot pay the first block
])
def test_invalid_strategies_name_the_field(edit, field):
    with pytest.raises(BadInputError) as err:
        parse_space({**BASE, **edit}, "bad.yaml")
    assert "bad.yaml" in str(err.value) and f"'{field}'" in str(err.value)


def test_set_edits_race_fields():
    space = load_space("paper_classifier_lr", ["strategy=noise-aware", "scheduler=race", "race.alpha=0.2",
                                               "race.first_seeds=3", "race.budget=4"])
    assert (space.strategy.alpha, space.strategy.first_seeds, space.strategy.budget) == (0.2, 3, 4)
    with pytest.raises(BadInputError, match="'race.budget'"):  # the preset's budget (2) cannot pay 3 first seeds
        load_space("paper_classifier_lr", ["race.first_seeds=3"])


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


# Per-seed scores of three points: "a" is best, "b" is clearly worse, "c" is a near tie with "a".
SCORES = {"a": [0.80, 0.82, 0.79, 0.81, 0.80, 0.83], "b": [0.78, 0.80, 0.80, 0.70, 0.70, 0.71],
          "c": [0.80, 0.81, 0.80, 0.80, 0.80, 0.82]}
LR = {"a": 1e-3, "b": 5e-4, "c": 1e-4}


def _race(tmp_path, delta: float):
    """Run a race to its end through its Tune searcher (a grid point searcher over "a", "b", "c"), answering each
    trial with the scores of its seeds; returns the searcher and the blocks it asked for."""
    from ray.tune.search import Searcher

    from vdes_tune.search.race import Race, RaceSettings
    from vdes_tune.search.race_searcher import RaceSearcher

    name = {lr: n for n, lr in LR.items()}
    base = FixedPoints([{"train.lr": LR[n]} for n in "abc"])
    settings = RaceSettings(first_seeds=2, max_seeds=6, alpha=0.1, test="wilcoxon", delta=delta, points=3, epochs=12)
    race = RaceSearcher(base, Race(settings), log_path=str(tmp_path / "race.json"))
    asked, n = [], 0
    while True:
        n += 1
        config = race.suggest(f"t{n}")
        if config == Searcher.FINISHED:
            return race.race, asked, base
        assert config is not None  # trials complete at once here, so the race never waits
        point, start, count = name[config["train.lr"]], config["_seed_start"], config["_seed_count"]
        asked.append((point, start, count))
        race.on_trial_complete(f"t{n}", _result({s: SCORES[point][s] for s in range(start, start + count)}))


class FixedPoints:
    """A stand-in point searcher that proposes the given points in order (what a grid does)."""

    metric, mode = "val_f1", "max"

    def __init__(self, points: list[dict]) -> None:
        self.points, self.told = list(points), []

    def suggest(self, trial_id: str):
        from ray.tune.search import Searcher

        return self.points.pop(0) if self.points else Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        self.told.append(trial_id)


def _result(scores: dict[int, float], epoch: int = 12) -> dict:
    """A final result as Tune hands it to a searcher: nested dicts flattened to `seed_scores/<seed>`."""
    return {"feasible": 1, "epoch": epoch, "val_f1": statistics.fmean(scores.values()) if scores else 0.0,
            "seed_epochs": 12 * len(scores), **{f"seed_scores/{s}": v for s, v in scores.items()}}


def test_a_race_drops_a_point_exactly_when_the_hand_computed_test_says_so(tmp_path):
    race, asked, base = _race(tmp_path, delta=0.0)
    assert asked[:3] == [("a", 0, 2), ("b", 0, 2), ("c", 0, 2)] and base.told == ["t1", "t2", "t3"]
    assert all(count == 1 for _, _, count in asked[3:])  # then one seed at a time
    # "b" against "a" after each round: two seeds W+ = 0 of ranks 1.5, 1.5 (p = 1/4); three and four seeds
    # W+ = 1, the better third seed (2/8, 2/16); five seeds 2/32 = 0.0625 < 0.1: dropped then, not before.
    drops = {e["point"]["train.lr"]: e for e in race.events if e["action"] == "dropped"}
    b = drops[LR["b"]]
    diffs = [SCORES["b"][s] - SCORES["a"][s] for s in range(5)]
    assert b["round"] == 5 and b["p_worse"] == pytest.approx(_enumerated_p(diffs)) == pytest.approx(2 / 32)
    earlier = [e for e in race.events if e["action"] == "continued" and e["point"]["train.lr"] == LR["b"]]
    assert [e["round"] for e in earlier] == [2, 3, 4]
    assert all(e["p_worse"] == pytest.approx(_enumerated_p(diffs[:e["round"]])) for e in earlier)
    # Without an indifference zone "c" is never shown worse: "a" and "c" race to the last seed.
    assert race.points[json.dumps((("train.lr", LR["c"]),))].status == "finished"
    assert sum(1 for p, _, _ in asked if p == "c") == 1 + 4
    assert '"dropped"' in (tmp_path / "race.json").read_text()


def test_an_indifference_zone_ends_a_race_between_near_ties_sooner(tmp_path):
    race, asked, _ = _race(tmp_path, delta=0.02)
    tie = next(e for e in race.events if e["action"] == "dropped" and e["point"]["train.lr"] == LR["c"])
    diffs = [SCORES["c"][s] - SCORES["a"][s] for s in range(tie["round"])]
    assert tie["p_not_better_by_delta"] == pytest.approx(_enumerated_p([d - 0.02 for d in diffs]))
    assert tie["p_not_better_by_delta"] < 0.1
    assert "indifference zone" in race.points[json.dumps((("train.lr", LR["c"]),))].why
    assert tie["round"] == 4  # four shifted differences all below 0: p = 1/16
    assert sum(1 for p, _, _ in asked if p == "c") < 1 + 4
