"""Racing seeds: training seeds as a fidelity, added only to contenders (F-race / irace style), in Ray Tune.

Ray Tune has epoch-wise multi-fidelity (ASHA) but nothing that adds repetitions to promising points and
drops a point on a paired test; Optuna's WilcoxonPruner tests per-instance scores, but inside one Optuna
trial. So this module writes by hand only that part, as a Tune searcher wrapped around the strategy's own
point searcher (grid, random or TPE), next to Ray's ASHAScheduler for the epoch rungs:

1. First round: every point the point searcher proposes trains its first `first_seeds` seeds (one trial),
   while `RungScheduler` (Ray's ASHA) stops trials at the epoch rungs on their best-so-far rung metric.
2. Then rounds over the contenders (points that finished their first seeds and were not dropped): each
   gets one more seed, as a trial of its own; when the round is complete, each contender is paired with
   the incumbent (the best mean) over their shared seeds and dropped when a one-sided paired test (exact
   Wilcoxon signed-rank, or paired t) shows it worse (p < alpha), or shows it not better than the incumbent
   by `delta` or more (an indifference zone: points closer than `delta` are a tie the search need not pay to
   break). The race ends when one contender is left or the contenders have `max_seeds` seeds.

Every decision and its evidence goes to `race.json` in the experiment folder (rung stops, with the cutoff
ASHA compared against, to `rungs.json`); export and the search report read both.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from vdes_tune.search.race import SEED_COUNT, SEED_START, evidence, paired_p, point_id, seed_scores
from vdes_tune.search.unique import PickledSearcher


def _write(path: str, data: dict[str, Any]) -> None:
    if path:
        from vdes_tune.search.storage import write_text

        write_text(path, json.dumps(data, indent=1, default=_plain))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


class RacingSearcher(PickledSearcher):
    """The point searcher's points, then rounds of one more seed for each contender (see the module doc)."""

    def __init__(self, base: Searcher, points: int, first_seeds: int, max_seeds: int, alpha: float, test: str,
                 delta: float, log_path: str = "") -> None:
        super().__init__(metric=base.metric, mode=base.mode)
        self.base, self.wanted, self.first_seeds, self.max_seeds = base, points, first_seeds, max_seeds
        self.alpha, self.test, self.delta, self.log_path = alpha, test, delta, log_path
        self.points: dict[str, dict[str, Any]] = {}  # key -> config, scores, status, why, trials, seed_epochs
        self.trial_point: dict[str, str] = {}
        self.first_trials: set[str] = set()  # trials of a point's first seeds: the point searcher hears of these
        self.running: set[str] = set()
        self.asked = 0
        self.base_done = False
        self.round = first_seeds
        self.events: list[dict[str, Any]] = []

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Forward to the point searcher."""
        ok = self.base.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.base.metric, self.base.mode
        return ok

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A new point's first seeds while the point searcher has points; then the race's next seed trial."""
        if not self.base_done:
            if self.asked >= self.wanted:
                self.base_done = True
            else:
                config = self.base.suggest(trial_id)
                if config == Searcher.FINISHED:
                    self.base_done = True
                elif config is None:
                    return None
                else:
                    self.asked += 1
                    self.first_trials.add(trial_id)
                    return self._start(trial_id, config, 0, self.first_seeds)
        if self.running & self.first_trials:
            return None  # the first round is not complete
        return self._next_seed(trial_id)

    def _start(self, trial_id: str, config: dict[str, Any], start: int, count: int) -> dict[str, Any]:
        key = point_id(config)
        point = self.points.setdefault(key, {"config": dict(config), "scores": {}, "status": "racing", "why": "",
                                             "trials": [], "seed_epochs": 0})
        point["trials"].append(trial_id)
        self.trial_point[trial_id] = key
        self.running.add(trial_id)
        return {**config, SEED_START: start, SEED_COUNT: count}

    def _contenders(self) -> list[str]:
        return [k for k, p in self.points.items() if p["status"] == "racing"]

    def _next_seed(self, trial_id: str) -> dict[str, Any] | str | None:
        while True:
            busy = {self.trial_point[t] for t in self.running}
            lacking = [k for k in self._contenders() if len(self.points[k]["scores"]) < self.round and k not in busy]
            if lacking:
                point = self.points[lacking[0]]
                return self._start(trial_id, point["config"], len(point["scores"]), 1)
            if self.running:
                return None  # the round is not complete
            self._decide()
            left = self._contenders()
            if len(left) <= 1 or self.round >= self.max_seeds:
                for k in left:
                    self._set(k, "finished", f"{len(self.points[k]['scores'])} seeds, " + (
                        "the last contender" if len(left) == 1 else f"the most a point may get ({self.max_seeds})"))
                self._save_log()
                return Searcher.FINISHED
            self.round += 1

    def incumbent(self) -> str | None:
        """The contender with the best mean over its seeds."""
        sign = 1.0 if self.mode == "max" else -1.0
        left = self._contenders()
        if not left:
            return None
        return max(left, key=lambda k: (sign * statistics.fmean(self.points[k]["scores"].values()),
                                        -list(self.points).index(k)))

    def _decide(self) -> None:
        """Pair every contender with the incumbent over their shared seeds; drop the worse and the tied."""
        best = self.incumbent()
        if best is None:
            return
        sign = 1.0 if self.mode == "max" else -1.0
        for k in self._contenders():
            if k == best:
                continue
            mine, theirs = self.points[k]["scores"], self.points[best]["scores"]
            found = evidence(mine, theirs, self.mode, self.test)
            diffs = [sign * (mine[str(s)] - theirs[str(s)]) for s in found["shared_seeds"]]
            found["p_not_better_by_delta"] = paired_p([d - self.delta for d in diffs], self.test) if self.delta else 1.0
            found.update({"incumbent": self.points[best]["config"], "incumbent_scores": dict(theirs),
                          "round": self.round, "delta": self.delta})
            if found["p_worse"] < self.alpha:
                why = (f"worse than the incumbent: {found['mean_diff']:+.4f} over {found['n']} shared seeds "
                       f"({self.test} one-sided p = {found['p_worse']:.4g} < {self.alpha:g})")
                self._set(k, "dropped", why, found)
            elif found["p_not_better_by_delta"] < self.alpha:
                # Behind by less than delta on average: a tie the search need not pay to break; by more: a point
                # not yet shown worse but shown to be no contender.
                close = sum(diffs) / len(diffs) > -self.delta
                why = (f"not better than the incumbent by {self.delta:g} or more: {found['mean_diff']:+.4f} over "
                       f"{found['n']} shared seeds ({self.test} one-sided p = {found['p_not_better_by_delta']:.4g} "
                       f"< {self.alpha:g}), " + ("a tie within the indifference zone" if close else
                                                 "behind by more than the indifference zone"))
                self._set(k, "dropped", why, found)
            else:
                self._log(k, "continued", {**found, "why": f"not shown worse (p = {found['p_worse']:.4g}) nor tied "
                                                          f"(p = {found['p_not_better_by_delta']:.4g})"})
        self._log(best, "incumbent", {"round": self.round, "why": "best mean over its seeds"})
        self._save_log()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward a first-seeds trial's results to the point searcher."""
        if trial_id in self.first_trials:
            self.base.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Merge the trial's finished seeds into its point; a point that could not finish its first seeds is out."""
        self.running.discard(trial_id)
        if trial_id in self.first_trials:
            self.base.on_trial_complete(trial_id, result=result, error=error)
        key = self.trial_point.get(trial_id)
        if key is None:
            return
        point = self.points[key]
        result = result or {}
        point["scores"].update(seed_scores(result))
        point["seed_epochs"] += int(result.get("seed_epochs", 0) or 0)
        if error or not result:
            self._set(key, "failed", "its trial failed")
        elif not result.get("feasible", 1):
            self._set(key, "infeasible", "over the GPU memory budget")
        elif trial_id in self.first_trials and len(seed_scores(result)) < self.first_seeds:
            self._set(key, "stopped at rung", f"stopped at epoch {result.get('epoch')} by the epoch rungs")
        else:
            self._log(key, "seed finished", {"seeds": len(point["scores"])})
            return
        self._save_log()

    def _set(self, key: str, status: str, why: str, found: dict[str, Any] | None = None) -> None:
        self.points[key].update(status=status, why=why, evidence=found or {})
        self._log(key, status, {**(found or {}), "why": why})

    def _log(self, key: str, action: str, details: dict[str, Any]) -> None:
        point = self.points[key]
        self.events.append({"point": point["config"], "action": action, "scores": dict(point["scores"]), **details})

    def _save_log(self) -> None:
        _write(self.log_path, {"settings": {"first_seeds": self.first_seeds, "max_seeds": self.max_seeds,
                                            "alpha": self.alpha, "test": self.test, "delta": self.delta},
                               "points": {k: dict(p) for k, p in self.points.items()},
                               "events": self.events})


class RungScheduler(ASHAScheduler):
    """Ray's ASHA over the trials of a point's first seeds only (a race's later seed trials train to the end),
    recording each stop with the cutoff it was compared against in `rungs.json`."""

    def __init__(self, log_path: str = "", **asha: Any) -> None:
        # The trial's own last epoch ends it anyway: a rung there must not count as a stop.
        super().__init__(stop_last_trials=False, **asha)
        self.log_path = log_path
        self.stops: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _later_seeds(trial: Any) -> bool:
        return int(trial.config.get(SEED_START, 0)) > 0

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Only first-seed trials enter a bracket."""
        if not self._later_seeds(trial):
            super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        """ASHA's decision, logged with its cutoff when it stops the trial."""
        if self._later_seeds(trial):
            return TrialScheduler.CONTINUE
        epoch = result.get(self._time_attr)
        cutoff = _rung_cutoff(self, trial.trial_id, epoch)
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and (result.get("seeds_done") or 0) < int(trial.config.get(SEED_COUNT, 1)):
            value = result.get(self._metric)
            self.stops[trial.trial_id] = {
                "point": {k: v for k, v in trial.config.items() if not k.startswith("_")}, "epoch": epoch,
                "rung_metric": self._metric, "value": value, "cutoff": cutoff,
                "why": f"{self._metric} {value:.4f} below the rung's cutoff {cutoff:.4f} at epoch {epoch}"
                if isinstance(value, float) and isinstance(cutoff, float) else "below the rung's cutoff"}
            _write(self.log_path, {"stops": self.stops})
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        """Forward first-seed trials."""
        if not self._later_seeds(trial):
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """Forward first-seed trials."""
        if not self._later_seeds(trial):
            super().on_trial_remove(tune_controller, trial)


def _rung_cutoff(asha: Any, tid: str, epoch: Any) -> float | None:
    """The cutoff ASHA will compare this result with (for the log only; read from Ray's bracket)."""
    try:
        bracket = asha._trial_info[tid]
        for milestone, recorded in bracket._rungs:
            if epoch >= milestone and tid not in recorded:
                cutoff = bracket.cutoff(recorded)
                return None if cutoff is None else float(cutoff)
            if epoch >= milestone:
                return None
    except (AttributeError, KeyError, TypeError):
        return None
    return None
