"""The seed race, as a plain object with no Ray in it: the points of a search, their seed scores and rung
values, and every decision taken on them.

Training seeds are a fidelity (F-race / irace): every point starts with a first block of `first_seeds` seeds
(one trial); while that trial trains, epoch rungs may stop it (`report`); when every first block has ended,
the race runs rounds over the contenders, one more seed each, and after each round pairs every contender
with the incumbent (the best mean) over their shared seeds, dropping it when a one-sided paired test shows
it worse, or not better by `delta` (an indifference zone: a tie the search need not pay to break). The race
ends when one contender is left, the contenders have `max_seeds` seeds, or the next round would overspend
the budget.

A rung stops a first block whose rung value (a best-so-far validation metric over its seeds) is below the
cutoff of the values recorded at that rung before it, the rule of Ray's ASHA (`cutoff`); a guard may keep
it anyway, because early ranks do not always predict late ranks:
- `self-check`: the rung acts only while the rank correlation between the rung value and the final objective,
  over the points that finished their first block, is high; when it falls, the rung stands down for good and
  the points it stopped are trained again from the start (reprieved);
- `extrapolate`: a parametric learning curve (the best fit of a log-linear and a few saturating power laws)
  fitted to the point's values so far keeps it when its optimistic prediction of the last epoch reaches the
  incumbent's value there;
- `hedge`: the points whose recent improvement is among the steepest at the rung are kept beside the better
  part.

Decisions are taken when a trial ends (`complete`), never when Tune asks for the next trial. Everything is
saved to and restored from one JSON record (`race/race.json`), which export, the leaderboard and the search report
read. `race_searcher.py` adapts it to Ray Tune.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The race's record, in a folder of the experiment: on a restore, Tune copies every *.json and *.pkl at the
# experiment's top level into its staging folder and uploads that copy again at each sync, which would put
# the record back to its state at the kill.
RACE_LOG = "race/race.json"
RACE_FORMAT = 2
SEED_START, SEED_COUNT = "_seed_start", "_seed_count"  # config keys a race adds to a point's trials
DROPPED = ("dropped", "stopped at rung")  # outcomes that rule a point out
SCORES_KEY = "seed_scores"
GUARDS = ("none", "self-check", "extrapolate", "hedge")


# --- paired evidence ---------------------------------------------------------------------------------------

def paired_p(diffs: list[float], test: str = "wilcoxon") -> float:
    """One-sided p-value that the paired differences (challenger - incumbent, larger is better) are below 0.

    Wilcoxon: the exact signed-rank distribution over all 2^n sign flips, zero differences dropped
    (Wilcoxon's convention) and tied magnitudes given their average rank; t: the paired t-test. With fewer
    than 2 usable differences, or none different from 0, the answer is 1 (no evidence)."""
    from scipy import stats

    d = [x for x in diffs if x == x]
    if test == "t":
        if len(d) < 2:
            return 1.0
        sd = statistics.stdev(d)
        mean = statistics.fmean(d)
        if sd == 0:
            return 0.0 if mean < 0 else 1.0
        return float(stats.t.cdf(mean / (sd / math.sqrt(len(d))), df=len(d) - 1))
    d = [x for x in d if x != 0]
    if len(d) < 2:
        return 1.0
    ranks = stats.rankdata([abs(x) for x in d])
    observed = sum(r for r, x in zip(ranks, d) if x > 0)  # small W+ means the challenger is worse
    # Exact null distribution of W+ with these (possibly tied) ranks: each rank counts with a random sign.
    doubled = [int(round(2 * r)) for r in ranks]
    counts = {0: 1}
    for r in doubled:
        nxt: dict[int, int] = {}
        for total, c in counts.items():
            nxt[total] = nxt.get(total, 0) + c
            nxt[total + r] = nxt.get(total + r, 0) + c
        counts = nxt
    limit = int(round(2 * observed))
    return sum(c for total, c in counts.items() if total <= limit) / 2 ** len(d)


def evidence(challenger: dict[str, float], incumbent: dict[str, float], mode: str, test: str,
             delta: float = 0.0) -> dict[str, Any]:
    """The paired comparison of two points over the seeds both have (the one place paired differences are
    taken): n, the mean difference (challenger minus incumbent, in the objective's direction) with its 95% t
    interval, the one-sided p that the challenger is worse, and with `delta` the p that it is not better by
    delta."""
    from scipy import stats

    shared = sorted(set(challenger) & set(incumbent), key=int)
    sign = 1.0 if mode == "max" else -1.0
    diffs = [sign * (challenger[s] - incumbent[s]) for s in shared]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else float("nan")
    low = high = None
    if n >= 2:
        half = float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(diffs) / math.sqrt(n)
        low, high = mean - half, mean + half
    found = {"shared_seeds": [int(s) for s in shared], "n": n, "mean_diff": mean, "diff_ci95": [low, high],
             "p_worse": paired_p(diffs, test), "test": test}
    if delta:
        found["p_not_better_by_delta"] = paired_p([d - delta for d in diffs], test)
    return found


# --- points and results --------------------------------------------------------------------------------------

def point_key(config: dict[str, Any]) -> tuple:
    """A hashable key of a configuration's searched values (floats to 12 significant digits; `_` keys, such as
    a race's seeds, left out)."""
    return tuple(sorted((k, float(f"{v:.12g}") if isinstance(v, float) else v)
                        for k, v in config.items() if not k.startswith("_")))


def point_id(config: dict[str, Any]) -> str:
    """A point's identity as text."""
    return json.dumps(point_key(config), default=str)


def seed_scores(result: dict[str, Any]) -> dict[str, float]:
    """A trial's per-seed scores from a result: nested (a trial's last result) or flattened by Tune
    (`seed_scores/<seed>`, what schedulers and searchers receive)."""
    nested = result.get(SCORES_KEY)
    if isinstance(nested, dict):
        return {str(k): float(v) for k, v in nested.items()}
    prefix = SCORES_KEY + "/"
    return {k[len(prefix):]: float(v) for k, v in result.items() if k.startswith(prefix)}


# --- the curve arithmetic the guards use ----------------------------------------------------------------------

def spearman(pairs: list[tuple[float, float]]) -> float:
    """Spearman's rank correlation of (x, y) pairs (average ranks for ties); NaN when either side is constant."""
    from scipy import stats

    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(pairs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return float("nan")
    return float(stats.spearmanr(xs, ys).statistic)


# The curve families `extrapolate` fits: y = a + b x(epoch), with x = ln(epoch) (log-linear) or x = -epoch^-alpha
# (a saturating power law, y = a - b epoch^-alpha, for a few fixed alpha: linear in a and b once alpha is fixed).
CURVE_FAMILIES: tuple[tuple[str, float], ...] = (("log", 0.0), ("pow", 0.5), ("pow", 1.0), ("pow", 2.0))


def _basis(kind: str, alpha: float, epoch: float) -> float:
    return math.log(epoch) if kind == "log" else -(epoch ** -alpha)


def extrapolate(curve: dict[int, float], horizon: int, level: float = 0.9) -> tuple[float, float]:
    """The value a learning curve reaches at epoch `horizon`, from the best-fitting (least squares) of a few
    parametric families (`CURVE_FAMILIES`, after Domhan et al.'s power laws) fitted to its values so far:
    the prediction and its one-sided `level` upper prediction bound (t distribution on the fit's residuals).
    With two epochs every line is exact and the bound is the log-linear prediction; with one there is
    nothing to fit."""
    from scipy import stats

    epochs = sorted(curve)
    ys = [curve[e] for e in epochs]
    n = len(ys)
    if n < 2:
        return float("nan"), float("inf")
    best = None
    for kind, alpha in CURVE_FAMILIES:
        xs = [_basis(kind, alpha, e) for e in epochs]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        a = my - b * mx
        sse = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
        if best is None or sse < best[0] - 1e-15:
            best = (sse, a, b, mx, sxx, _basis(kind, alpha, horizon))
    sse, a, b, mx, sxx, x0 = best
    pred = a + b * x0
    if n < 3:
        return pred, pred
    se = math.sqrt(sse / (n - 2)) * math.sqrt(1 + 1 / n + (x0 - mx) ** 2 / sxx)
    return pred, pred + float(stats.t.ppf(level, n - 2)) * se


def cutoff(recorded: list[float], keep: float) -> float | None:
    """ASHA's cutoff (Ray's `_Bracket.cutoff`): the (1 - keep) quantile of the values recorded at a rung
    before this one, values oriented so that larger is better; None when nothing was recorded. NumPy's
    `nanpercentile` arithmetic (linear method, its two-sided lerp), written out: it is the replays' hot spot."""
    values = sorted(v for v in recorded if v == v)
    if not values:
        return None
    index = (len(values) - 1) * (((1 - keep) * 100) / 100)
    low = math.floor(index)
    a, b = values[low], values[min(low + 1, len(values) - 1)]
    t = index - low
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


# --- settings ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RungSettings:
    """The epoch rungs of a first block: where, on what, how many continue, and what guards the cut."""

    epochs: tuple[int, ...] = ()  # rung epochs; empty: no rung
    key: str = ""  # the result key ranked (a best-so-far mean over the block's seeds)
    mode: str = "max"
    keep: float = 0.5  # the share of recorded values a point must reach to continue (1 / reduction factor)
    guard: str = "none"  # one of GUARDS
    horizon: int = 0  # the block's last epoch (what `extrapolate` predicts)
    min_pairs: int = 4  # self-check: finished first blocks needed before the rung may act
    min_rho: float = 0.6  # self-check: the rank correlation the rung needs to act
    level: float = 0.9  # extrapolate: the one-sided level of the optimistic bound
    hedge: float = 0.25  # hedge: the share of the steepest recent improvements kept


@dataclass(frozen=True)
class RaceSettings:
    """How a race is run."""

    first_seeds: int = 1
    max_seeds: int = 1
    alpha: float = 0.1
    test: str = "wilcoxon"
    delta: float = 0.0
    mode: str = "max"  # the objective's
    points: int = 0  # how many points the point searcher proposes
    epochs: int = 1  # a seed's epochs (what one more seed of a point costs)
    budget: float = 0.0  # the most seed-epochs, in units of points x epochs (2: grid-2's cost); 0: no cap
    rung: RungSettings = field(default_factory=RungSettings)

    @property
    def budget_seed_epochs(self) -> float:
        """The budget in seed-epochs (infinite without one)."""
        return self.budget * self.points * self.epochs if self.budget else math.inf


# --- the race ---------------------------------------------------------------------------------------------------

@dataclass
class Point:
    """One point of the space, as the race knows it."""

    config: dict[str, Any]
    order: int
    status: str = "racing"  # racing | finished | dropped | stopped at rung | failed | infeasible
    why: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # seed index -> best-validation-epoch objective
    seed_epochs: int = 0
    trials: list[str] = field(default_factory=list)
    curve: dict[str, float] = field(default_factory=dict)  # first block: epoch -> rung value
    block_ended: int = 0  # the epoch its first block ended (0 while it trains)
    reprieved: bool = False


@dataclass
class Trial:
    """One trial: a block of a point's seeds."""

    point: str
    start: int
    count: int
    running: bool = True
    stopped: bool = False  # by a rung
    rungs: dict[str, bool] = field(default_factory=dict)  # rung epoch -> continued
    exempt: bool = False  # a reprieved first block trains to the end


class Race:
    """The race's state and decisions (see the module docstring). Feed it with `add_point`, `report` and
    `complete`; ask it with `next_block`; save it with `to_json`."""

    def __init__(self, settings: RaceSettings) -> None:
        self.settings = settings
        self.points: dict[str, Point] = {}
        self.trials: dict[str, Trial] = {}
        self.events: list[dict[str, Any]] = []
        self.round = settings.first_seeds
        self.asked = 0  # points proposed so far
        self.searcher_done = False
        self.over = False
        self.rung_records: dict[str, dict[str, float]] = {}  # rung epoch -> trial -> value (larger is better)
        self.slopes: dict[str, dict[str, float]] = {}  # rung epoch -> trial -> recent improvement (hedge)
        self.rung_on = True  # self-check: False once the rung stood down
        self.queue: list[str] = []  # reprieved points whose first block is to be trained again

    # -- what the searcher asks -------------------------------------------------------------------------------

    def wants_points(self) -> bool:
        """Whether the point searcher should be asked for another point."""
        return not self.searcher_done and self.asked < self.settings.points

    def add_point(self, trial_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """A new point from the point searcher: its first block, as a trial config."""
        key = point_id(config)
        if key not in self.points:
            self.points[key] = Point(dict(config), len(self.points))
        self.asked += 1
        if self.asked >= self.settings.points:
            self.searcher_done = True
        return self._start(trial_id, key, 0, self.settings.first_seeds)

    def no_more_points(self) -> None:
        """The point searcher has nothing more to propose (a finite space ran out before `points`)."""
        self.searcher_done = True
        self._advance()

    def next_block(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next block to train: a reprieved first block, or a contender's next seed; None to wait for the
        round; "FINISHED" once the race is over."""
        if self.over:
            return "FINISHED"
        if self.queue:
            key = self.queue.pop(0)
            config = self._start(trial_id, key, 0, self.settings.first_seeds)
            self.trials[trial_id].exempt = True
            return config
        if not self._first_round_over():
            return None
        busy = {t.point for t in self.trials.values() if t.running}
        for key in self._contenders():
            point = self.points[key]
            if len(point.scores) < self.round and key not in busy:
                return self._start(trial_id, key, len(point.scores), 1)
        return None

    def _start(self, trial_id: str, key: str, start: int, count: int) -> dict[str, Any]:
        point = self.points[key]
        point.trials.append(trial_id)
        self.trials[trial_id] = Trial(key, start, count)
        return {**point.config, SEED_START: start, SEED_COUNT: count}

    # -- what trials report -------------------------------------------------------------------------------------

    def report(self, trial_id: str, epoch: int, value: float) -> bool:
        """A trial's rung value (best so far, mean over its seeds) after `epoch`; False: the rung stops it.
        Later seeds and reprieved blocks always continue. Deciding twice on one rung gives the same answer."""
        trial = self.trials.get(trial_id)
        rung = self.settings.rung
        if trial is None or trial.start > 0 or value != value:
            return True
        point = self.points[trial.point]
        point.curve[str(epoch)] = float(value)
        if trial.exempt:
            return True
        # ASHA's order: the highest rung reached that has no record of this trial decides.
        for milestone in sorted(rung.epochs, reverse=True):
            if epoch < milestone:
                continue
            if str(milestone) in trial.rungs:
                return trial.rungs[str(milestone)]
            go = self._at_rung(trial_id, trial, point, milestone, value)
            trial.rungs[str(milestone)] = go
            trial.stopped = trial.stopped or not go
            return go
        return True

    def _at_rung(self, trial_id: str, trial: Trial, point: Point, milestone: int, value: float) -> bool:
        rung = self.settings.rung
        sign = 1.0 if rung.mode == "max" else -1.0
        records = self.rung_records.setdefault(str(milestone), {})
        cut = cutoff(list(records.values()), rung.keep)
        records[trial_id] = sign * value
        slope = self._slope(point, milestone)
        slopes = self.slopes.setdefault(str(milestone), {})
        steep = cutoff(list(slopes.values()), rung.hedge)
        if slope is not None:
            slopes[trial_id] = slope
        if cut is None or sign * value >= cut:
            return True
        where = f"{rung.key} {value:.4f} below the rung's cutoff {sign * cut:.4f} at epoch {milestone}"
        kept = self._guard(point, milestone, where, slope, steep)
        if kept:
            self._log(trial.point, "kept at rung", {"epoch": milestone, "value": value, "cutoff": sign * cut,
                                                   "why": kept})
            return True
        self._set(trial.point, "stopped at rung", where, {"epoch": milestone, "value": value,
                                                          "cutoff": sign * cut, "guard": rung.guard})
        return False

    def _guard(self, point: Point, milestone: int, where: str, slope: float | None, steep: float | None) -> str:
        """Why the guard keeps a point the cutoff would stop ('' to stop it)."""
        rung = self.settings.rung
        if rung.guard == "self-check":
            rho, n = self.rank_agreement(milestone)
            if not self.rung_on:
                return f"{where}, but the rung stood down"
            if n < rung.min_pairs or not rho >= rung.min_rho:
                return (f"{where}, but the rung has not shown it ranks like the end (Spearman {rho:.2f} over {n} "
                        f"finished points; it acts from {rung.min_pairs} points at {rung.min_rho:g})")
        elif rung.guard == "extrapolate":
            best = self._incumbent_curve_end()
            if best is None:
                return f"{where}, but no point has finished its first block to compare the extrapolation with"
            pred, upper = extrapolate({int(e): v for e, v in point.curve.items() if int(e) <= milestone},
                                      rung.horizon, rung.level)
            sign = 1.0 if rung.mode == "max" else -1.0
            if sign * upper >= sign * best:
                return (f"{where}, but its curve extrapolates to {pred:.4f} at epoch {rung.horizon} (upper "
                        f"{rung.level:.0%} bound {upper:.4f}), which reaches the incumbent's {best:.4f}")
        elif rung.guard == "hedge" and slope is not None and steep is not None and slope >= steep:
            return (f"{where}, but its improvement over the last epochs ({slope:+.4f}) is among the steepest "
                    f"{rung.hedge:.0%} at this rung")
        return ""

    def _slope(self, point: Point, milestone: int) -> float | None:
        """The rung value's recent improvement: now minus half the rung's epochs ago (oriented)."""
        back = milestone - max(1, milestone // 2)
        now, then = point.curve.get(str(milestone)), point.curve.get(str(back))
        if now is None or then is None:
            return None
        return (1.0 if self.settings.rung.mode == "max" else -1.0) * (now - then)

    def rank_agreement(self, milestone: int) -> tuple[float, int]:
        """Spearman's correlation between the rung value at `milestone` and the first-block objective, over the
        points whose first block ran to its last epoch; and how many there are."""
        pairs = []
        for p in self.points.values():
            value = p.curve.get(str(milestone))
            first = [p.scores[str(s)] for s in range(self.settings.first_seeds) if str(s) in p.scores]
            if value is not None and p.block_ended >= self.settings.rung.horizon and first:
                sign = 1.0 if self.settings.mode == "max" else -1.0
                pairs.append((value * (1.0 if self.settings.rung.mode == "max" else -1.0),
                              sign * statistics.fmean(first)))
        return spearman(pairs), len(pairs)

    def _incumbent_curve_end(self) -> float | None:
        """The best rung value at the last epoch among first blocks that got there."""
        rung = self.settings.rung
        ends = [p.curve[str(rung.horizon)] for p in self.points.values() if str(rung.horizon) in p.curve]
        if not ends:
            return None
        return max(ends) if rung.mode == "max" else min(ends)

    def complete(self, trial_id: str, scores: dict[str, float], seed_epochs: int, epoch: int,
                 outcome: str = "ok") -> None:
        """A trial ended: its finished seeds' scores, its cost, its last epoch, and `ok`, `failed` or
        `infeasible`. Decisions due now (a stand-down, the end of a round) are taken here."""
        trial = self.trials.get(trial_id)
        if trial is None or not trial.running:
            return  # unknown, or told twice
        trial.running = False
        point = self.points[trial.point]
        point.scores.update({str(k): float(v) for k, v in scores.items()})
        point.seed_epochs += int(seed_epochs)
        if trial.start == 0:
            point.block_ended = int(epoch)
        if outcome == "failed":
            self._set(trial.point, "failed", "its trial failed")
        elif outcome == "infeasible":
            self._set(trial.point, "infeasible", "over the GPU memory budget")
        elif not trial.stopped:
            self._log(trial.point, "seed finished", {"seeds": len(point.scores)})
            if trial.start == 0:
                self._check_rung()
        self._advance()

    def _check_rung(self) -> None:
        """Self-check: stand the rung down (for good) when it no longer ranks like the end, and reprieve what
        it stopped."""
        rung = self.settings.rung
        if rung.guard != "self-check" or not self.rung_on or not rung.epochs:
            return
        milestone = min(rung.epochs)
        rho, n = self.rank_agreement(milestone)
        acted = any(p.status == "stopped at rung" for p in self.points.values())
        if n >= rung.min_pairs and not rho >= rung.min_rho and acted:
            self.rung_on = False
            self.events.append({"action": "rung stood down", "epoch": milestone, "spearman": rho, "points": n,
                                "why": f"Spearman {rho:.2f} over {n} finished points is below {rung.min_rho:g}: "
                                       f"the rung no longer ranks like the end"})
            for key, p in self.points.items():
                if p.status == "stopped at rung":
                    p.status, p.why, p.reprieved = "racing", "", True
                    p.scores.clear()
                    self.queue.append(key)
                    self._log(key, "reprieved", {"why": "the rung that stopped it stood down"})

    # -- rounds --------------------------------------------------------------------------------------------------

    def _contenders(self) -> list[str]:
        return [k for k, p in self.points.items() if p.status == "racing"]

    def _first_round_over(self) -> bool:
        return self.searcher_done and not self.queue and not any(
            t.running and t.start == 0 for t in self.trials.values())

    def _advance(self) -> None:
        """Decide every round that is complete."""
        while not self.over and self._first_round_over() and not any(t.running for t in self.trials.values()):
            left = self._contenders()
            if any(len(self.points[k].scores) < self.round for k in left):
                return  # the round still has seeds to train
            self.decide()
            left = self._contenders()
            spent = sum(p.seed_epochs for p in self.points.values())
            next_cost = len(left) * self.settings.epochs
            if len(left) <= 1 or self.round >= self.settings.max_seeds or \
                    spent + next_cost > self.settings.budget_seed_epochs:
                why = ("the last contender" if len(left) == 1 else
                       f"the most a point may get ({self.settings.max_seeds})" if self.round >= self.settings.max_seeds
                       else f"another round ({next_cost} seed-epochs) would overspend the budget "
                            f"({spent} of {self.settings.budget_seed_epochs:.0f} spent)")
                for k in left:
                    self._set(k, "finished", f"{len(self.points[k].scores)} seeds, {why}")
                self.over = True
                return
            self.round += 1

    def incumbent(self) -> str | None:
        """The contender with the best mean over its seeds (the earlier point on a tie)."""
        sign = 1.0 if self.settings.mode == "max" else -1.0
        left = [k for k in self._contenders() if self.points[k].scores]
        if not left:
            return None
        return max(left, key=lambda k: (sign * statistics.fmean(self.points[k].scores.values()),
                                        -self.points[k].order))

    def decide(self) -> None:
        """Pair every contender with the incumbent over their shared seeds; drop the worse and the tied."""
        s = self.settings
        for k in [k for k in self._contenders() if not self.points[k].scores]:
            self._set(k, "failed", "no seed finished")
        best = self.incumbent()
        if best is None:
            return
        theirs = self.points[best].scores
        for k in self._contenders():
            if k == best:
                continue
            found = evidence(self.points[k].scores, theirs, s.mode, s.test, s.delta)
            found.update({"incumbent": self.points[best].config, "incumbent_scores": dict(theirs),
                          "round": self.round, "delta": s.delta})
            tied = found.get("p_not_better_by_delta", 1.0)
            if found["p_worse"] < s.alpha:
                self._set(k, "dropped", f"worse than the incumbent: {found['mean_diff']:+.4f} over {found['n']} "
                                        f"shared seeds ({s.test} one-sided p = {found['p_worse']:.4g} < {s.alpha:g})",
                          found)
            elif tied < s.alpha:
                close = found["mean_diff"] > -s.delta
                self._set(k, "dropped", f"not better than the incumbent by {s.delta:g} or more: "
                                        f"{found['mean_diff']:+.4f} over {found['n']} shared seeds ({s.test} one-sided "
                                        f"p = {tied:.4g} < {s.alpha:g}), " + (
                                            "a tie within the indifference zone" if close else
                                            "behind by more than the indifference zone"), found)
            else:
                self.points[k].evidence = found
                self._log(k, "continued", {**found, "why": f"not shown worse (p = {found['p_worse']:.4g}) nor tied "
                                                           f"(p = {tied:.4g})"})
        self._log(best, "incumbent", {"round": self.round, "why": "best mean over its seeds"})

    # -- the record ----------------------------------------------------------------------------------------------

    def _set(self, key: str, status: str, why: str, found: dict[str, Any] | None = None) -> None:
        point = self.points[key]
        point.status, point.why, point.evidence = status, why, dict(found or {})
        self._log(key, status, {**(found or {}), "why": why})

    def _log(self, key: str, action: str, details: dict[str, Any]) -> None:
        point = self.points[key]
        self.events.append({"point": point.config, "action": action, "scores": dict(point.scores), **details})

    def spent(self) -> int:
        """Seed-epochs trained so far."""
        return sum(p.seed_epochs for p in self.points.values())

    def to_json(self) -> dict[str, Any]:
        """The whole state: settings, points, trials, rung records, events."""
        return {"format": RACE_FORMAT, "settings": asdict(self.settings),
                "points": {k: asdict(p) for k, p in self.points.items()},
                "trials": {k: asdict(t) for k, t in self.trials.items()}, "events": self.events,
                "round": self.round, "asked": self.asked, "searcher_done": self.searcher_done, "over": self.over,
                "rung_records": self.rung_records, "slopes": self.slopes, "rung_on": self.rung_on,
                "queue": self.queue, "spent": self.spent()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Race:
        """A race as `to_json` saved it."""
        settings = dict(data["settings"])
        rung = RungSettings(**{**settings.pop("rung"), "epochs": tuple(data["settings"]["rung"]["epochs"])})
        race = cls(RaceSettings(**settings, rung=rung))
        race.points = {k: Point(**p) for k, p in data["points"].items()}
        race.trials = {k: Trial(**t) for k, t in data["trials"].items()}
        race.events = list(data["events"])
        race.round, race.asked = int(data["round"]), int(data["asked"])
        race.searcher_done, race.over, race.rung_on = bool(data["searcher_done"]), bool(data["over"]), \
            bool(data["rung_on"])
        race.rung_records, race.slopes = dict(data["rung_records"]), dict(data["slopes"])
        race.queue = list(data["queue"])
        return race


def with_settings(settings: RaceSettings, **changes: Any) -> RaceSettings:
    """Settings with some fields changed (rung fields by their names in `RungSettings`)."""
    rung_fields = {k: v for k, v in changes.items() if k in RungSettings.__dataclass_fields__}
    rest = {k: v for k, v in changes.items() if k not in rung_fields}
    return replace(settings, rung=replace(settings.rung, **rung_fields), **rest)


def read_race_log(path: str, name: str = RACE_LOG) -> dict[str, Any] | None:
    """The race record of an experiment folder (local or URI), or None when it did not race."""
    from vdes_tune.search.storage import read_text

    found = read_text(f"{path.rstrip('/')}/{name}")
    return json.loads(found) if found else None
