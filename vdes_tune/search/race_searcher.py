"""Ray Tune adapters over the seed race (`race.Race`, where every decision is taken).

Ray Tune has epoch-wise multi-fidelity (ASHA, HyperBand) but nothing that adds repetitions to promising points
and drops a point on a paired test, and Optuna's WilcoxonPruner tests per-instance scores only inside one
Optuna trial; so the race is written by hand, once, as a plain object. These two classes only carry Tune's
calls to it:

- `RaceSearcher` wraps the strategy's point searcher (grid, random or TPE from Optuna via Ray's OptunaSearch):
  while the race wants points it asks the point searcher and starts each point's first block; then it hands
  Tune the race's next seed block. A trial's end goes to `Race.complete`, where rounds are decided.
- `RaceScheduler` hands each result of a first block to `Race.report` and stops the trial when the rung says
  so. It holds the searcher, not a race of its own: Tune checkpoints the searcher and never the scheduler, so
  after a restore both read the one restored race.

The race's record is written to `race/race.json` in the experiment folder whenever a trial ends.
"""

from __future__ import annotations

import json
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from vdes_tune.search.race import Race, seed_scores
from vdes_tune.search.unique import PickledSearcher


class RaceSearcher(PickledSearcher):
    """The point searcher's points, then the race's seed blocks (see the module docstring)."""

    def __init__(self, base: Searcher, race: Race, log_path: str = "") -> None:
        super().__init__(metric=base.metric, mode=base.mode)
        self.base, self.race, self.log_path = base, race, log_path
        self.first: set[str] = set()  # trials of a new point's first block: the point searcher hears of these

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Forward to the point searcher."""
        ok = self.base.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.base.metric, self.base.mode
        return ok

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """A new point's first block while the race wants points; then the race's next block."""
        if self.race.wants_points():
            config = self.base.suggest(trial_id)
            if config is None:
                return None
            if config == Searcher.FINISHED:
                self.race.no_more_points()
                self.save_log()
            else:
                self.first.add(trial_id)
                return self.race.add_point(trial_id, config)
        block = self.race.next_block(trial_id)
        return Searcher.FINISHED if block == "FINISHED" else block

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward a new point's results to the point searcher."""
        if trial_id in self.first:
            self.base.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Tell the point searcher (a new point's trial) and the race, which decides what is due."""
        if trial_id in self.first:
            self.base.on_trial_complete(trial_id, result=result, error=error)
        result = result or {}
        outcome = "failed" if error or not result else "infeasible" if not result.get("feasible", 1) else "ok"
        seen = len(self.race.events)
        self.race.complete(trial_id, seed_scores(result), int(result.get("seed_epochs", 0) or 0),
                           int(result.get("epoch", 0) or 0), outcome)
        for event in self.race.events[seen:]:
            # The one decision that changes the search's course; simulated replays keep no record and say nothing.
            if event["action"] == "rung stood down" and self.log_path:
                print(f"[search] the rung at epoch {event['epoch']} stood down: {event['why']}; the points it "
                      f"stopped are trained again", flush=True)
        self.save_log()

    def save_log(self) -> None:
        """Write the race's record (the file export and the report read)."""
        if self.log_path:
            from vdes_tune.search.storage import write_text

            write_text(self.log_path, json.dumps(self.race.to_json(), indent=1, default=_plain))

    def save(self, checkpoint_path: str) -> None:
        """Tune's checkpoint of this searcher: the point searcher by pickle, the race as its JSON record."""
        race = self.race
        try:
            self.race = race.to_json()  # type: ignore[assignment]
            super().save(checkpoint_path)
        finally:
            self.race = race

    def restore(self, checkpoint_path: str) -> None:
        """Restore what `save` wrote, in place (the scheduler holds this object)."""
        super().restore(checkpoint_path)
        self.race = Race.from_json(self.race)  # type: ignore[arg-type]


class RaceScheduler(FIFOScheduler):
    """The race's epoch rungs as a Tune scheduler: a result's rung value goes to `Race.report`."""

    def __init__(self, searcher: RaceSearcher, key: str) -> None:
        super().__init__()
        self.searcher, self.key = searcher, key

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """The race knows its metric and mode."""
        return True

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        """STOP when the race's rung stops the trial."""
        epoch, value = result.get("epoch"), result.get(self.key)
        if epoch is None or value is None:
            return TrialScheduler.CONTINUE
        go = self.searcher.race.report(trial.trial_id, int(epoch), float(value))
        return TrialScheduler.CONTINUE if go else TrialScheduler.STOP


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
