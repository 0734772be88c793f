"""The race core (`search/race.py`) on hand-built points and curves: no Ray, no Tune, no training."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from scipy import stats

from vdes_tune.search.race import (Point, Race, RaceSettings, RungSettings, cutoff, extrapolate, paired_p, point_id,
                                   spearman)

EPOCHS = 12


def _settings(**rung: object) -> RaceSettings:
    base = dict(first_seeds=1, max_seeds=4, alpha=0.1, test="wilcoxon", delta=0.0, points=8, epochs=EPOCHS)
    return RaceSettings(**base, rung=RungSettings(**{"epochs": (3,), "key": "best_val_roc_auc", "keep": 0.5,
                                                     "horizon": EPOCHS, **rung}))


def _points(race: Race, scores: dict[str, list[float]]) -> dict[str, str]:
    """Hand-built points with these seed scores (a finished first round); their keys by name."""
    keys = {}
    for order, (name, values) in enumerate(scores.items()):
        config = {"train.lr": 10.0 ** -(order + 3)}
        keys[name] = point_id(config)
        race.points[keys[name]] = Point(config, order, scores={str(s): v for s, v in enumerate(values)})
    return keys


def test_decide_drops_on_the_paired_test_and_ties_on_the_zone_and_keeps_the_rest():
    race = Race(RaceSettings(first_seeds=2, max_seeds=6, alpha=0.1, delta=0.02, points=4, epochs=EPOCHS))
    keys = _points(race, {"best": [0.80, 0.82, 0.79, 0.81], "worse": [0.70, 0.71, 0.70, 0.69],
                          "tie": [0.795, 0.822, 0.786, 0.809], "unsure": [0.85, 0.70, 0.86, 0.72]})
    race.round = 4
    race.decide()
    status = {n: race.points[k].status for n, k in keys.items()}
    assert status == {"best": "racing", "worse": "dropped", "tie": "dropped", "unsure": "racing"}
    worse = race.points[keys["worse"]].evidence
    assert worse["p_worse"] == pytest.approx(1 / 16) and worse["n"] == 4  # four of four below: 1/2^4
    tie = race.points[keys["tie"]].evidence
    # Not shown worse (differences -0.005, +0.002, -0.004, -0.001: W+ = 2, p = 3/16), but every difference less
    # the zone is below 0 (p = 1/16): a tie the race need not pay to break.
    assert tie["p_worse"] == pytest.approx(3 / 16) and tie["p_not_better_by_delta"] == pytest.approx(1 / 16)
    assert "a tie within the indifference zone" in race.points[keys["tie"]].why
    unsure = race.points[keys["unsure"]].evidence
    diffs = [0.85 - 0.80, 0.70 - 0.82, 0.86 - 0.79, 0.72 - 0.81]
    assert unsure["p_worse"] == pytest.approx(paired_p(diffs)) and unsure["p_worse"] > 0.1
    low, high = unsure["diff_ci95"]
    half = stats.t.ppf(0.975, 3) * np.std(diffs, ddof=1) / 2
    assert (low, high) == pytest.approx((np.mean(diffs) - half, np.mean(diffs) + half))


def test_the_plain_rung_decides_exactly_as_rays_asha():
    """The same reports, in the same order, to the race's rung and to Ray's ASHAScheduler (stop_last_trials off,
    as the old RungScheduler ran it): the same stop/continue answers, across rung settings and arrival orders."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class Trial:
        def __init__(self, trial_id: str) -> None:
            self.trial_id = trial_id

    for grace, rf, rungs_at in ((3, 2, (3,)), (1, 3, (1, 3, 9)), (2, 2, (2, 4, 8))):
        rng = random.Random(grace * 10 + rf)
        max_t = max(rungs_at)
        asha = ASHAScheduler(time_attr="epoch", metric="m", mode="max", grace_period=grace, reduction_factor=rf,
                             max_t=max_t, stop_last_trials=False)
        race = Race(_settings(epochs=rungs_at, keep=1 / rf))
        alive = {}
        for i in range(16):
            tid = f"t{i}"
            race.add_point(tid, {"train.lr": float(i)})
            asha.on_trial_add(None, Trial(tid))
            alive[tid] = [0, rng.uniform(0.5, 0.9)]
        answers = []
        while alive:
            tid = rng.choice(sorted(alive))
            alive[tid][0] += 1
            epoch, value = alive[tid][0], alive[tid][1] + 0.01 * alive[tid][0] + rng.gauss(0, 0.02)
            ours = race.report(tid, epoch, value)
            theirs = asha.on_trial_result(None, Trial(tid), {"epoch": epoch, "m": value}) == TrialScheduler.CONTINUE
            answers.append((ours, theirs))
            if not ours or epoch == EPOCHS:
                del alive[tid]
        assert all(a == b for a, b in answers)
        assert sum(not a for a, _ in answers) >= 4  # the rungs did stop trials


def _feed(race: Race, tid: str, config: dict, curve: list[float], final: float) -> bool:
    """A first block: its rung values epoch by epoch until the rung stops it or it ends; True if it ran to the
    end."""
    race.add_point(tid, config)
    for epoch, value in enumerate(curve, 1):
        if not race.report(tid, epoch, value):
            race.complete(tid, {}, epoch, epoch)
            return False
    race.complete(tid, {"0": final}, EPOCHS, EPOCHS)
    return True


def _curve(start: float, end: float) -> list[float]:
    """A best-so-far curve rising log-linearly from `start` at epoch 1 to `end` at the last epoch."""
    return [start + (end - start) * math.log(e) / math.log(EPOCHS) for e in range(1, EPOCHS + 1)]


def test_self_check_acts_while_early_ranks_agree_and_stands_down_and_reprieves_when_they_stop():
    race = Race(_settings(guard="self-check", min_pairs=4, min_rho=0.6))
    # Four fast learners whose rung values rank like their ends: the rung may act after them.
    for i, (start, end) in enumerate([(0.70, 0.80), (0.60, 0.70), (0.65, 0.75), (0.55, 0.62)]):
        assert _feed(race, f"t{i}", {"train.lr": float(i)}, _curve(start, end), end)
    rho, n = race.rank_agreement(3)
    assert n == 4 and rho == pytest.approx(1.0)
    # A slow learner: lowest at the rung, best at the end. The rung stops it...
    slow = _curve(0.40, 0.90)
    assert not _feed(race, "t4", {"train.lr": 4.0}, slow, 0.90)
    key = point_id({"train.lr": 4.0})
    assert race.points[key].status == "stopped at rung" and race.rung_on
    # ... then three more points that rank against their rung values (high early, low at the end) bring the
    # correlation below 0.6 (scipy's, computed here as the truth) and the rung stands down for good.
    pairs = [(_curve(s, e)[2], e) for s, e in [(0.70, 0.80), (0.60, 0.70), (0.65, 0.75), (0.55, 0.62)]]
    for i, (start, end) in enumerate([(0.80, 0.60), (0.78, 0.58), (0.76, 0.57)], 5):
        kept = _feed(race, f"t{i}", {"train.lr": float(i)}, _curve(start, end), end)
        assert kept  # high at the rung: never below the cutoff
        pairs.append((_curve(start, end)[2], end))
        truth = stats.spearmanr(*zip(*pairs)).statistic
        assert race.rung_on == (truth >= 0.6)
        if not race.rung_on:
            break
    assert not race.rung_on and any(e["action"] == "rung stood down" for e in race.events)
    assert race.points[key].status == "racing" and race.points[key].reprieved
    # Its first block is trained again, to the end: the rung no longer reads it.
    block = race.next_block("again")
    assert block["_seed_start"] == 0 and block["_seed_count"] == 1 and block["train.lr"] == 4.0
    assert all(race.report("again", e, v) for e, v in enumerate(slow, 1))


def test_extrapolate_keeps_a_slow_learner_whose_curve_reaches_the_incumbent_and_stops_a_flat_one():
    race = Race(_settings(guard="extrapolate", epochs=(4,)))
    assert _feed(race, "inc", {"train.lr": 0.0}, _curve(0.75, 0.82), 0.80)  # the incumbent ends at 0.82
    assert _feed(race, "ok", {"train.lr": 1.0}, _curve(0.78, 0.81), 0.78)  # above the cutoff at epoch 4
    steep = [0.50, 0.60, 0.66, 0.70]  # log-linear: 0.50 + 0.144 ln(e), about 0.86 at epoch 12
    flat = [0.60, 0.61, 0.615, 0.618]
    assert _feed(race, "slow", {"train.lr": 2.0}, steep + [0.9] * (EPOCHS - 4), 0.85)
    assert not _feed(race, "flat", {"train.lr": 3.0}, flat + [0.62] * (EPOCHS - 4), 0.60)
    kept = [e for e in race.events if e["action"] == "kept at rung"]
    assert [e["point"]["train.lr"] for e in kept] == [2.0] and "reaches the incumbent's 0.8200" in kept[0]["why"]


def test_the_extrapolation_is_the_best_least_squares_family_with_its_prediction_bound():
    curve = {1: 0.50, 2: 0.60, 3: 0.66, 4: 0.70, 5: 0.71}
    pred, upper = extrapolate(curve, 12, level=0.9)
    y = np.array(list(curve.values()))
    fits = []
    for basis in (np.log, lambda e: -(e ** -0.5), lambda e: -1.0 / e, lambda e: -(e ** -2.0)):
        design = np.column_stack([np.ones(5), basis(np.array(list(curve), dtype=float))])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ coef
        x0 = np.array([1.0, basis(12.0)])
        se = math.sqrt(resid @ resid / 3 * (1 + x0 @ np.linalg.inv(design.T @ design) @ x0))
        fits.append((resid @ resid, x0 @ coef, x0 @ coef + stats.t.ppf(0.9, 3) * se))
    _, want, bound = min(fits, key=lambda f: f[0])
    assert (pred, upper) == pytest.approx((want, bound))
    # This curve flattens: a saturating power law fits it better than the log line, and predicts less.
    assert pred < fits[0][1]
    assert extrapolate({1: 0.5, 2: 0.6}, 12) == pytest.approx((0.5 + 0.1 / math.log(2) * math.log(12),) * 2)
    assert extrapolate({3: 0.5}, 12)[1] == math.inf


def test_hedge_keeps_the_steepest_recent_improvement_beside_the_better_half():
    race = Race(_settings(guard="hedge", epochs=(4,), hedge=0.25))
    for i, (start, end) in enumerate([(0.70, 0.80), (0.68, 0.78), (0.66, 0.76), (0.64, 0.74)]):
        _feed(race, f"t{i}", {"train.lr": float(i)}, _curve(start, end), end)
    # Below the cutoff at epoch 4 but rising faster over epochs 2..4 than any recorded point: kept.
    assert _feed(race, "steep", {"train.lr": 9.0}, [0.40, 0.50, 0.58, 0.64] + [0.8] * (EPOCHS - 4), 0.8)
    assert not _feed(race, "shallow", {"train.lr": 8.0}, [0.60, 0.61, 0.62, 0.63] + [0.65] * (EPOCHS - 4), 0.6)
    slopes = race.slopes["4"]
    assert slopes["steep"] == pytest.approx(0.64 - 0.50) and slopes["steep"] >= cutoff(
        [v for k, v in slopes.items() if k not in ("steep", "shallow")], 0.25)


def test_a_budget_ends_the_race_before_a_round_would_overspend_it():
    settings = RaceSettings(first_seeds=1, max_seeds=10, points=4, epochs=EPOCHS, budget=2.5)
    race = Race(settings)
    scores = {0: [0.7, 0.7, 0.7], 1: [0.69, 0.71, 0.7], 2: [0.7, 0.69, 0.71], 3: [0.71, 0.7, 0.69]}
    n = 0
    for p in range(4):
        n += 1
        race.add_point(f"t{n}", {"train.lr": float(p)})
        race.complete(f"t{n}", {"0": scores[p][0]}, EPOCHS, EPOCHS)
    while (block := race.next_block(f"t{n + 1}")) not in (None, "FINISHED"):
        n += 1
        s = block["_seed_start"]
        race.complete(f"t{n}", {str(s): scores[int(block["train.lr"])][s]}, EPOCHS, EPOCHS)
    # Round 1 and 2 cost 8 x 12 = 96 of 2.5 x 4 x 12 = 120; a third round (48) would overspend.
    assert block == "FINISHED" and race.spent() == 96
    assert all(p.status == "finished" and "overspend" in p.why for p in race.points.values())


def test_the_record_restores_a_race_mid_way_to_the_same_end():
    def noise(*key: object) -> float:
        return random.Random("-".join(map(str, key))).gauss(0, 0.01)

    def play(race: Race, steps: range, n0: int = 0) -> int:
        n = n0
        for _ in steps:
            block = race.next_block(f"t{n + 1}") if not race.wants_points() else race.add_point(
                f"t{n + 1}", {"train.lr": float(race.asked)})
            if block in (None, "FINISHED"):
                break
            n += 1
            lr, start = int(block["train.lr"]), block["_seed_start"]
            for epoch in range(1, EPOCHS + 1):
                if not race.report(f"t{n}", epoch, 0.5 + 0.03 * lr + 0.01 * epoch + noise(n, epoch)):
                    race.complete(f"t{n}", {}, epoch * block["_seed_count"], epoch)
                    break
            else:
                race.complete(f"t{n}", {str(s): 0.6 + 0.02 * lr + 2 * noise(n, "seed", s) for s in
                                        range(start, start + block["_seed_count"])},
                              EPOCHS * block["_seed_count"], EPOCHS)
        return n

    settings = RaceSettings(first_seeds=2, max_seeds=6, points=6, epochs=EPOCHS, delta=0.02,
                            rung=RungSettings(epochs=(3,), key="k", keep=0.5, horizon=EPOCHS, guard="hedge"))
    whole = Race(settings)
    play(whole, range(1000))
    halfway = Race(settings)
    n = play(halfway, range(9))
    restored = Race.from_json(json.loads(json.dumps(halfway.to_json())))
    assert restored.to_json() == halfway.to_json()
    play(restored, range(1000), n)
    assert restored.over and restored.to_json() == whole.to_json()


def test_the_cutoff_is_numpys_nanpercentile():
    rng = random.Random(3)
    for n in range(1, 40):
        values = [rng.uniform(0, 1) for _ in range(n)] + [float("nan")] * (n % 3)
        for keep in (1 / 2, 1 / 3, 1 / 4, 0.25, 0.1):
            assert cutoff(values, keep) == np.nanpercentile(values, (1 - keep) * 100)
    assert cutoff([], 0.5) is None


def test_spearman_is_scipys_and_undefined_on_a_constant_side():
    pairs = [(0.1, 0.3), (0.2, 0.2), (0.3, 0.9), (0.4, 0.4)]
    assert spearman(pairs) == pytest.approx(stats.spearmanr(*zip(*pairs)).statistic)
    assert math.isnan(spearman([(0.1, 0.5), (0.2, 0.5), (0.3, 0.5)]))
