"""Replaying a search against recorded curves: the live search's Tuner, searchers, schedulers and export, with
a trial that reads the curve of (point, drawn seed) instead of training (`trainable.ReplaySource`).

A replay draws which recorded search seeds a trial's seeds are (with replacement; one draw for all points of
the replay, as a live search gives every point the same seeds), runs the strategy to its end with trials one at a time,
exports the choice the way `vdes-tune export` does, and scores it against the table's truth (held-out seeds
no replay reads).

Replays run in batches: one Tuner run holds many independent replays of a strategy, each with its own
searcher and scheduler, built exactly as a live search builds them; `Multiplexed` and `MultiplexedScheduler`
only route each trial to its replay's own (by the `_replay` key of its config). A Tuner run starts a trial
actor, and Ray Tune's import makes that about 2 s of CPU, more than a whole replay costs otherwise: one run
per replay would not fit the benchmark's 15 minutes on 2 cores.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from vdes_tune.gpus import PAPER_GPU_GB, Packing
from vdes_tune.search.curves import CurveTable
from vdes_tune.search.space import SearchSpace, parse_space

TOLERANCE = 0.02
REPLAY_KEY = "_replay"


@dataclass(frozen=True)
class ReplayStrategy:
    """A named strategy to replay: edits of the table's space (YAML fields)."""

    name: str
    fields: dict[str, Any]

    def space(self, table: CurveTable, replay: int) -> SearchSpace:
        """The table's space with this strategy's fields; random searchers get the replay's own seed."""
        from vdes_tune.search.strategy import TOP_LEVEL

        data = {k: v for k, v in table.meta["space"].items() if k not in TOP_LEVEL}
        data.update({"algorithm": "grid", **self.fields, "name": f"replay-{self.name}", "seed": replay})
        return parse_space(data, f"replay strategy {self.name}")


def draw_seeds(table: CurveTable, count: int, replay: int) -> tuple[int, ...]:
    """Which recorded search seeds replay number `replay`'s seeds 0..count-1 are: drawn with replacement from
    the search seeds (the bootstrap: fresh seeds from their empirical distribution). Without replacement, a
    strategy that reaches every search seed would see exactly the recorded ones in every replay and look
    surer than it is. Every strategy's replay k takes the first `count` of the same draw (common draws)."""
    pool = np.array(table.search_seeds)
    picked = np.random.default_rng(replay).choice(pool, size=max(count, len(pool)), replace=True)[:count]
    return tuple(int(s) for s in picked)


class Multiplexed(Searcher):
    """Several independent searchers in one Tuner run: replay i's searcher suggests and hears only its own
    trials (tagged `_replay: i`), and stops after its own number of samples."""

    def __init__(self, searchers: list[Searcher], sizes: list[int], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.searchers, self.sizes = searchers, sizes
        self.given = [0] * len(searchers)
        self.done: set[int] = set()
        self.owner: dict[str, int] = {}
        self.busy: set[int] = set()  # replays with a trial running: a replay runs its trials one at a time

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Each inner searcher was built with its metric and mode."""
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next point of the first replay that has one."""
        for i, searcher in enumerate(self.searchers):
            if i in self.done or i in self.busy:
                continue
            if self.given[i] >= self.sizes[i]:
                self.done.add(i)
                continue
            config = searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                self.done.add(i)
                continue
            if config is None:
                continue
            self.given[i] += 1
            self.owner[trial_id] = i
            self.busy.add(i)
            return {**config, REPLAY_KEY: i}
        return Searcher.FINISHED if len(self.done) == len(self.searchers) else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward to the trial's replay."""
        self.searchers[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Forward to the trial's replay, whose next trial may then start."""
        self.busy.discard(self.owner[trial_id])
        self.searchers[self.owner[trial_id]].on_trial_complete(trial_id, result=result, error=error)


class MultiplexedScheduler(FIFOScheduler):
    """Several independent schedulers in one Tuner run, each deciding only its replay's trials."""

    def __init__(self, schedulers: list[Any], metric: str) -> None:
        super().__init__()
        self.schedulers, self._metric = schedulers, metric

    def _of(self, trial: Any) -> Any:
        return self.schedulers[int(trial.config.get(REPLAY_KEY, 0))]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Each inner scheduler was built with its metric and mode."""
        return True

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Forward."""
        if (inner := self._of(trial)) is not None:
            inner.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        """Forward; a replay without a scheduler continues."""
        inner = self._of(trial)
        return TrialScheduler.CONTINUE if inner is None else inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        """Forward."""
        if (inner := self._of(trial)) is not None:
            inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        """Forward."""
        if (inner := self._of(trial)) is not None:
            inner.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """Forward."""
        if (inner := self._of(trial)) is not None:
            inner.on_trial_remove(tune_controller, trial)


def race_log_name(replay: int) -> str:
    """The race record of replay number `replay` of a batch, in its experiment folder."""
    return f"race/race-{replay}.json"


def replay_batch(table: CurveTable, strategy: ReplayStrategy, replays: list[int], truth: dict[int, float],
                 storage: str | None = None) -> list[dict[str, Any]]:
    """Replays `replays` of `strategy` in one Tuner run, trials one at a time; one result per replay (the
    exported point, its true value, regret, cost in seed-epochs)."""
    from vdes_tune.search.export import Experiment, load_experiment
    from vdes_tune.search.race import read_race_log
    from vdes_tune.search.runner import build_tuner
    from vdes_tune.search.storage import SIDECAR, write_text
    from vdes_tune.search.strategy import build_search
    from vdes_tune.search.trainable import ReplaySource, TrialContext

    spaces = [strategy.space(table, r) for r in replays]
    maps = [draw_seeds(table, sp.strategy.repeats, r) for r, sp in zip(replays, spaces)]
    first = spaces[0]
    # Trials run in a folder of their own: they read the table by its absolute path.
    source = ReplaySource(str(Path(table.path).resolve()), tuple(maps), report_epochs(first))
    ctx = TrialContext(first, "", 0, Packing(PAPER_GPU_GB, PAPER_GPU_GB), False, 1.0, None, source)
    folder = Path(storage or tempfile.mkdtemp(prefix="vdes-replay-"))
    name = f"{strategy.name}-{replays[0]}" + (f"-{replays[-1]}" if len(replays) > 1 else "")
    path = f"{folder}/{name}"
    write_text(f"{path}/{SIDECAR}", json.dumps({"experiment": name, "space": first.source, "space_path": first.path}))
    built = [build_search(sp, f"{path}/{race_log_name(i)}") for i, sp in enumerate(spaces)]
    searcher = Multiplexed([b[0] for b in built], [sp.strategy.most_trials(sp.size) for sp in spaces], first.metric,
                           first.mode)
    scheduler = MultiplexedScheduler([b[1] for b in built], first.metric)
    start = time.perf_counter()
    try:
        build_tuner(first, ctx, str(folder), name, 1, 0, [], search_alg=searcher, scheduler=scheduler,
                    num_samples=sum(sp.strategy.most_trials(sp.size) for sp in spaces),
                    registered_as=f"vdes_replay_{uuid.uuid4().hex}").fit()
        whole = load_experiment(path)
        seconds = (time.perf_counter() - start) / len(replays)
        out = []
        for i, (r, sp) in enumerate(zip(replays, spaces)):
            trials = [t for t in whole.trials if int(t.config.get(REPLAY_KEY, 0)) == i]
            race = read_race_log(path, race_log_name(i))
            exp = Experiment(path, whole.sidecar, sp, trials, race)
            out.append(score_replay(table, strategy, r, maps[i], exp, truth, seconds))
        return out
    finally:
        if storage is None:
            shutil.rmtree(folder, ignore_errors=True)


def score_replay(table: CurveTable, strategy: ReplayStrategy, replay: int, seeds: tuple[int, ...], exp: Any,
                 truth: dict[int, float], seconds: float) -> dict[str, Any]:
    """What a replay ended with, scored by the truth: the exported point (as `vdes-tune export` chooses it), its
    true value and regret, whether it is within the tolerance, its cost in seed-epochs and trials."""
    from vdes_tune.search.export import best_per_architecture, leaderboard

    board = leaderboard(exp)
    entry = next(iter(best_per_architecture(exp, board).values()), None)
    point = table.point_of(entry["searched"]) if entry else None
    best = max(truth.values())
    value = truth[point] if point is not None else float("nan")
    return {"strategy": strategy.name, "replay": replay, "seeds_drawn": list(seeds), "point": point,
            "true_value": value, "regret": best - value if point is not None else float("nan"),
            "within": bool(point is not None and best - value <= TOLERANCE + 1e-12),
            "seed_epochs": int(board["seed_epochs"].sum()) if len(board) else 0, "trials": len(board),
            "seconds": seconds, "estimate": entry["objective"][exp.space.metric] if entry else float("nan"),
            "seeds_of_choice": entry["objective"]["repeats"] if entry else 0,
            "versus_runner_up": (entry or {}).get("versus_runner_up", {}).get("verdict", "")}


def replay_once(table: CurveTable, strategy: ReplayStrategy, replay: int, truth: dict[int, float],
                storage: str | None = None) -> dict[str, Any]:
    """One replay of `strategy` (draw number `replay`)."""
    return replay_batch(table, strategy, [replay], truth, storage)[0]


def report_epochs(space: SearchSpace) -> tuple[int, ...]:
    """The epochs at which a replayed first block reports before its end: every epoch up to the last rung (a
    rung's guard reads the curve before it), none without rungs."""
    rungs = space.strategy.rung_epochs(space.epochs)
    return tuple(range(1, max(rungs) + 1)) if rungs else ()


def paper_cost(table: CurveTable) -> int:
    """Seed-epochs of the paper's protocol on this table: every point, every search seed, every epoch."""
    return len(table.points) * len(table.search_seeds) * table.epochs


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score 95% interval of a binomial proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)
