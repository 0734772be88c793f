"""A replay without Tune's controller: the strategy's own searcher and scheduler objects (the ones a live search
hands to Tune: Optuna via Ray's OptunaSearch, Ray's ASHA, the race's adapters), driven one trial at a time the
way Tune's controller drives them, over recorded curves. Syne Tune compares its schedulers the same way (a
simulator backend replaying tabulated curves).

Per result, as `TuneController._process_trial_result` does: the result is flattened; the scheduler decides;
the searcher hears the result unless the trial is stopped; the trial's last result is kept. When a trial
ends (its last epoch, or a STOP), the scheduler and then the searcher are told, with the flattened last
result. Trials run one at a time, as `replay_batch` runs them in Tune (max_concurrent 1); the test
`test_simulated_replays_are_the_tune_replays` holds the two to the same choices and costs.

What it saves: a Tuner run, its trial actors and their Ray Tune import (about 2 s of CPU per run), so a replay
costs milliseconds and every strategy can be replayed on every table hundreds of times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vdes_tune.search.curves import CurveTable
from vdes_tune.search.replay import REPLAY_KEY, ReplayStrategy, draw_seeds, report_epochs, score_replay


@dataclass
class SimTrial:
    """What a scheduler reads of a trial."""

    trial_id: str
    config: dict[str, Any]
    status: str = "RUNNING"
    last_result: dict[str, Any] = field(default_factory=dict)


def simulate_replay(table: CurveTable, strategy: ReplayStrategy, replay: int, truth: dict[int, float]
                    ) -> dict[str, Any]:
    """One replay of `strategy` (draw number `replay`), scored as `replay_batch` scores it."""
    import time

    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher
    from ray.tune.utils import flatten_dict

    from vdes_tune.search.export import Experiment, TrialRecord
    from vdes_tune.search.strategy import build_search
    from vdes_tune.search.trainable import _TABLES, replay_fitter, report_of, trial_seeds

    import numpy as np

    start = time.perf_counter()
    np.random.seed(replay)  # Ray's ASHA draws a trial's bracket from NumPy's global generator
    space = strategy.space(table, replay)
    seed_map = draw_seeds(table, space.strategy.repeats, replay)
    searcher, scheduler = build_search(space)
    base = space.seeds({})[0]
    reports = set(report_epochs(space))
    _TABLES.setdefault(table.path, table)  # the fitters read the table in memory
    records = []
    for n in range(space.strategy.most_trials(space.size)):
        trial_id = f"sim_{n:05d}"
        config = searcher.suggest(trial_id)
        if config == Searcher.FINISHED:
            break
        if config is None:
            raise RuntimeError(f"{strategy.name}: the searcher waits with no trial running")
        config = {**config, REPLAY_KEY: 0}
        trial = SimTrial(trial_id, config)
        if scheduler is not None:
            scheduler.on_trial_add(None, trial)
        point = {k: v for k, v in config.items() if not k.startswith("_")}
        seeds = trial_seeds(space, config)
        fitters = [replay_fitter(table.path, space.epochs, point, seed_map[s - base]) for s in seeds]
        iteration = 0
        while not all(f.done for f in fitters):
            last = [f.step() for f in fitters if not f.done]
            if max(f.epoch for f in fitters) not in reports and not all(f.done for f in fitters):
                continue
            result = {**report_of(fitters, seeds, space.metric, last), "feasible": 1}
            iteration += 1
            result["training_iteration"] = iteration
            trial.last_result = result
            flat = flatten_dict(dict(result))
            decision = TrialScheduler.CONTINUE if scheduler is None else scheduler.on_trial_result(None, trial, flat)
            if decision == TrialScheduler.STOP:
                break
            searcher.on_trial_result(trial_id, flat)
        flat = flatten_dict(dict(trial.last_result))
        if scheduler is not None:
            scheduler.on_trial_complete(None, trial, flat)
        searcher.on_trial_complete(trial_id, result=flat)
        trial.status = "TERMINATED"
        records.append(TrialRecord(trial_id, "TERMINATED", config, trial.last_result))
    race = searcher.race.to_json() if hasattr(searcher, "race") else None
    exp = Experiment("", {"experiment": strategy.name}, space, records, race)
    return score_replay(table, strategy, replay, seed_map, exp, truth, time.perf_counter() - start)
