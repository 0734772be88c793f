"""Racing seeds: a Tune scheduler that treats training seeds as a fidelity (F-race / irace style).

Ray Tune has epoch-wise multi-fidelity (ASHA) but nothing that adds repetitions to promising points and
drops a point on a paired test; Optuna's WilcoxonPruner tests per-instance scores but prunes inside one
Optuna trial, not across Tune trials that train seeds one after another. So this module writes by hand
only that part, and composes Ray's ASHAScheduler for the epoch rungs:

- while a trial trains its first block of seeds, Ray's ASHA decides at the epoch rungs, on the rung key the
  trial reports (the best-so-far mean of a metric that does not tie at zero, such as validation ROC-AUC);
- each time a trial finishes a seed, its per-seed scores are paired with the incumbent's (the best mean
  among points not dropped, with at least the first block done) over the seeds both have, and a
  one-sided paired test (Wilcoxon signed-rank, exact, or a paired t-test) decides: p < alpha drops it;
  otherwise it gets another seed, up to the most seeds a point may get.

Every decision and its evidence goes to `race.json` in the experiment folder.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from vdes_tune.search.race import DROPPED, evidence, seed_scores


class RaceScheduler(FIFOScheduler):
    """Epoch rungs (Ray's ASHA) over a trial's first seeds, then a race over seeds (see the module doc)."""

    def __init__(self, metric: str, mode: str, rungs: Any | None, first_seeds: int, max_seeds: int,
                 alpha: float, test: str, log_path: str = "") -> None:
        super().__init__()
        self._metric, self._mode = metric, mode
        self.rungs, self.first_seeds, self.max_seeds = rungs, first_seeds, max_seeds
        self.alpha, self.test, self.log_path = alpha, test, log_path
        self.scores: dict[str, dict[str, float]] = {}
        self.points: dict[str, dict[str, Any]] = {}
        self.outcome: dict[str, dict[str, Any]] = {}  # trial id -> {"status": ..., evidence}
        self.events: list[dict[str, Any]] = []

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """The metric and mode are the scheduler's own (the objective); refuse others."""
        return not ((metric and metric != self._metric) or (mode and mode != self._mode))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Register the trial (with its finished seeds, when it is restored mid-race)."""
        if self.rungs is not None:
            self.rungs.on_trial_add(tune_controller, trial)
        self.points[trial.trial_id] = {k: v for k, v in trial.config.items() if not k.startswith("_")}
        found = seed_scores(trial.last_result or {})
        if found:
            self.scores[trial.trial_id] = found

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        """Rung decisions during the first block; a race decision at every newly finished seed."""
        tid = trial.trial_id
        if not result.get("feasible", 1):
            return TrialScheduler.CONTINUE
        scores = seed_scores(result)
        if len(scores) < self.first_seeds:
            return self._rung(tune_controller, trial, result)
        if len(scores) <= len(self.scores.get(tid, {})):
            return TrialScheduler.CONTINUE
        self.scores[tid] = scores
        return self._race(tid)

    def _rung(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if self.rungs is None:
            return TrialScheduler.CONTINUE
        key, epoch = self.rungs.metric, result.get("epoch")
        cutoff = _rung_cutoff(self.rungs, trial.trial_id, epoch)
        action = self.rungs.on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            value = result.get(key)
            self._decide(trial.trial_id, "stopped at rung", {
                "epoch": epoch, "rung_metric": key, "value": value, "cutoff": cutoff,
                "why": f"{key} {value:.4f} below the rung's cutoff {cutoff:.4f} at epoch {epoch}"
                if isinstance(value, float) and isinstance(cutoff, float) else "below the rung's cutoff"})
        return action

    def incumbent(self) -> str | None:
        """The trial with the best mean over its finished seeds among those not dropped (first block done)."""
        sign = 1.0 if self._mode == "max" else -1.0
        alive = [(t, s) for t, s in self.scores.items()
                 if len(s) >= self.first_seeds and self.outcome.get(t, {}).get("status") not in DROPPED]
        if not alive:
            return None
        return max(alive, key=lambda ts: (sign * statistics.fmean(ts[1].values()), len(ts[1]), ts[0]))[0]

    def _race(self, tid: str) -> str:
        best = self.incumbent()
        n = len(self.scores[tid])
        if best is None or best == tid:
            if n >= self.max_seeds:
                self._decide(tid, "finished", {"seeds": n, "why": f"all {n} seeds, incumbent"})
                return TrialScheduler.STOP
            self._log(tid, "continued", {"seeds": n, "why": "incumbent"})
            return TrialScheduler.CONTINUE
        found = evidence(self.scores[tid], self.scores[best], self._mode, self.test)
        found.update({"incumbent": best, "incumbent_point": self.points.get(best),
                      "incumbent_scores": dict(self.scores[best]), "seeds": n})
        if found["n"] >= 2 and found["p_worse"] < self.alpha:
            found["why"] = (f"worse than the incumbent by {found['mean_diff']:+.4f} over {found['n']} shared seeds "
                            f"({self.test} one-sided p = {found['p_worse']:.4g} < {self.alpha:g})")
            self._decide(tid, "dropped", found)
            return TrialScheduler.STOP
        if n >= self.max_seeds:
            found["why"] = f"all {n} seeds, not shown worse (p = {found['p_worse']:.4g})"
            self._decide(tid, "finished", found)
            return TrialScheduler.STOP
        found["why"] = f"not shown worse (p = {found['p_worse']:.4g}): one more seed"
        self._log(tid, "continued", found)
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        """Forward to the rungs; a trial that ended by itself (every seed trained) is finished."""
        if self.rungs is not None and trial.trial_id in getattr(self.rungs, "_trial_info", {}):
            self.rungs.on_trial_complete(tune_controller, trial, result)
        if trial.trial_id not in self.outcome:
            self._decide(trial.trial_id, "finished", {"seeds": len(self.scores.get(trial.trial_id, {})),
                                                      "why": "ran every seed it was given"})

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """Forward to the rungs."""
        if self.rungs is not None and trial.trial_id in getattr(self.rungs, "_trial_info", {}):
            self.rungs.on_trial_remove(tune_controller, trial)

    def _decide(self, tid: str, status: str, details: dict[str, Any]) -> None:
        self.outcome[tid] = {"status": status, **details}
        self._log(tid, status, details)

    def _log(self, tid: str, action: str, details: dict[str, Any]) -> None:
        self.events.append({"trial_id": tid, "point": self.points.get(tid), "action": action,
                            "scores": dict(self.scores.get(tid, {})), **details})
        if self.log_path:
            from vdes_tune.search.storage import write_text

            write_text(self.log_path, json.dumps({"events": self.events, "outcome": self.outcome,
                                                  "settings": self.settings()}, indent=1, default=_plain))

    def settings(self) -> dict[str, Any]:
        """The race's settings, for the log."""
        return {"metric": self._metric, "mode": self._mode, "first_seeds": self.first_seeds,
                "max_seeds": self.max_seeds, "alpha": self.alpha, "test": self.test,
                "rung_metric": getattr(self.rungs, "metric", None)}

    def debug_string(self) -> str:
        """A line for Tune's verbose output."""
        dropped = sum(1 for o in self.outcome.values() if o["status"] in DROPPED)
        return f"Racing seeds: {len(self.scores)} trials scored, {dropped} dropped, incumbent {self.incumbent()}"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


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
