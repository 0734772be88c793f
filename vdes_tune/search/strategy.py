"""Search strategies: what a search composes from Ray Tune's and Optuna's parts, named in the space YAML.

A strategy is a searcher (which points: `grid`, `random`, `optuna-tpe`; optionally never the same point
twice), a scheduler (when to stop a trial: `none`, `asha`, or `race`) and a repeat policy (how many
training seeds a point gets, and when). The YAML names a preset with `strategy:` and may override its
knobs with the top-level fields (`algorithm`, `num_samples`, `seed`, `repeats`, `scheduler`, `asha`) and a
`race` section:

    strategy: noise-aware     # fixed (the default) | noise-aware
    repeats: 10               # fixed: seeds every point trains; race: the most seeds a point may get
    asha: {grace_fraction: 0.5, reduction_factor: 2, rungs: 1, metric: val_roc_auc, guard: none}
    race: {first_seeds: 1, alpha: 0.1, test: wilcoxon, delta: 0.02, budget: 2}

`fixed`: each trial trains all `repeats` seeds in lockstep; the scheduler (if any) is Ray's ASHA on the
objective or `asha.metric`. `race`: seeds are a fidelity, raced by `race.Race` (a point's first block of
seeds, epoch rungs over it with an optional guard, then one seed per round to the contenders, dropped by a
paired test; `budget` caps the seed-epochs at that many times the points x epochs). A preset adapts to small
spaces (its first block is at most `repeats` seeds; its rungs are off when a trial has no more epochs than
the grace period); values a space sets itself are checked as written.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from vdes_tune.errors import BadInputError
from vdes_tune.search.race import GUARDS

ALGORITHMS = ("grid", "random", "optuna-tpe")
SCHEDULERS = ("none", "asha", "race")
TESTS = ("wilcoxon", "t")
RUNG_METRICS = ("val_f1", "val_roc_auc", "val_loss", "val_accuracy", "val_macro_f1")
# The knobs of each preset; a space's own top-level fields override them.
PRESETS: dict[str, dict[str, Any]] = {
    "fixed": {"scheduler": "none", "unique": False},
    # Chosen by leave-one-table-out over the recorded tables (docs/benchmarks.md, "Search strategies replayed"):
    # the candidate with the best worst case within grid-2's cost. One ROC-AUC rung at half the epochs keeping
    # the better half; no guard (none of the three beat the bare half rung's worst case); a first block of one
    # seed, then Wilcoxon rounds; seed-epochs capped at grid-2's. A rung at a quarter of the epochs cut the slow
    # learners of arch3 and lost to grid-2 there.
    "noise-aware": {"scheduler": "race", "unique": True,
                    "asha": {"grace_fraction": 0.5, "reduction_factor": 2, "rungs": 1, "metric": "val_roc_auc",
                             "guard": "none"},
                    "race": {"first_seeds": 1, "alpha": 0.1, "test": "wilcoxon", "delta": 0.02, "budget": 2}},
}
TOP_LEVEL = ("strategy", "algorithm", "num_samples", "seed", "repeats", "scheduler", "asha", "race", "unique")


@dataclass(frozen=True)
class Strategy:
    """Searcher, scheduler and repeat policy of one search."""

    name: str = "fixed"
    algorithm: str = "grid"
    num_samples: int = 0
    seed: int = 0
    unique: bool = False  # never run a point already run (the searcher is told its known result instead)
    repeats: int = 1  # seeds per point: all of them (fixed), or the most a point may get (race)
    scheduler: str = "none"
    grace_period: int = 1  # epoch rungs (asha, and the first seeds of race)
    reduction_factor: int = 3
    rungs: int = 0  # how many rungs (grace, grace x rf, ...); 0: every one that fits the epochs (Ray's ASHA)
    rung_metric: str = ""  # ranked at the rungs, best so far; empty: the objective
    first_seeds: int = 1  # race: seeds every point starts with (trained in lockstep)
    alpha: float = 0.1  # race: one-sided p below which a point is worse than the incumbent
    test: str = "wilcoxon"  # race: paired test over shared seeds
    delta: float = 0.0  # race: indifference zone; a point shown not better than the incumbent by delta is a tie
    budget: float = 0.0  # race: the most seed-epochs, in units of points x epochs; 0: no cap
    guard: str = "none"  # race: what may keep a point the rung would stop (race.Race)
    min_rho: float = 0.6  # guard self-check: the rank correlation the rung needs to act
    min_pairs: int = 4  # guard self-check: finished first blocks needed before the rung acts
    hedge: float = 0.25  # guard hedge: the share of the steepest recent improvements kept
    brackets: int = 1  # asha: Ray's asynchronous Hyperband brackets (a later bracket's first rung is later)

    @property
    def races(self) -> bool:
        """Seeds are a fidelity: added one at a time to points the race has not dropped."""
        return self.scheduler == "race"

    @property
    def seeds_at_start(self) -> int:
        """Seeds a point's first trial trains in lockstep."""
        return self.first_seeds if self.races else self.repeats

    def most_trials(self, points: int) -> int:
        """Tune's sample count for a search over `points` points: a race adds a trial per extra seed, and a
        self-checked rung that stands down trains each point it stopped once more."""
        if not self.races:
            return points
        return points * (1 + self.repeats - self.first_seeds) + (points if self.guard == "self-check" else 0)

    def rung_epochs(self, epochs: int) -> tuple[int, ...]:
        """The epochs at which ASHA's rungs decide (Ray's bracket 0: grace x rf^k up to the last epoch)."""
        if self.scheduler == "none" or self.grace_period >= epochs:
            return ()
        return tuple(self.grace_period * self.reduction_factor ** k for k in range(self.rung_count(epochs)))

    def rung_count(self, epochs: int) -> int:
        """The number of rungs: `rungs`, or every one up to the last epoch (as Ray's ASHA places them)."""
        fit = int(math.log(epochs / self.grace_period) / math.log(self.reduction_factor) + 1)
        return min(self.rungs, fit) if self.rungs else fit

    def rung_key(self, objective: str) -> str:
        """The result key the epoch rungs rank: the best-so-far mean of the rung metric."""
        return f"best_{self.rung_metric or objective}"

    def rung_mode(self, objective: str, mode: str) -> str:
        """max or min for the rung metric."""
        metric = self.rung_metric or objective
        return mode if metric == objective else ("min" if metric == "val_loss" else "max")

    def describe(self, epochs: int = 0) -> str:
        """One line for logs and reports (`epochs`: a trial's, to say when no rung fits)."""
        parts = [f"{self.name}: {self.algorithm}" + (f" x {self.num_samples}" if self.algorithm != "grid" else ""),
                 "unique points" if self.unique and self.algorithm != "grid" else ""]
        if self.scheduler == "asha":
            parts.append(f"ASHA grace {self.grace_period} rf {self.reduction_factor}"
                         + (f" x {self.brackets} brackets" if self.brackets > 1 else "")
                         + (f" ({self.rungs} rung(s))" if self.rungs else "") + f" on {self.rung_metric or 'the objective'}")
        if self.races:
            rungs = "no epoch rungs" if epochs and self.grace_period >= epochs else (
                f"epoch rungs grace {self.grace_period} rf {self.reduction_factor}"
                + (f" ({self.rungs} rung(s))" if self.rungs else "") + f" on best {self.rung_metric or 'objective'}")
            if self.guard != "none" and not (epochs and self.grace_period >= epochs):
                rungs += f", guarded ({self.guard})"
            parts.append(f"{rungs} over the first {self.first_seeds} seed(s); race to "
                         f"{self.repeats} seeds, {self.test} one-sided p < {self.alpha:g}"
                         + (f", ties within {self.delta:g}" if self.delta else "")
                         + (f", at most {self.budget:g} x points x epochs seed-epochs" if self.budget else ""))
        else:
            parts.append(f"{self.repeats} seed(s) per point")
        return "; ".join(p for p in parts if p)


def _fail(where: str, name: str, what: str) -> BadInputError:
    return BadInputError(f"{where}: field '{name}': {what}")


def _int(data: dict[str, Any], key: str, default: int, low: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(where, key, f"expected an integer >= {low}, got {value!r}")
    return value


def _section(data: dict[str, Any], key: str, allowed: set[str], where: str) -> dict[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, dict) or set(section) - allowed:
        raise _fail(where, key, f"expected a mapping with keys from {sorted(allowed)}, got {section!r}")
    return section


def merged_with_preset(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The space's strategy fields over its preset's (sections merge key by key)."""
    name = data.get("strategy", "fixed")
    if name not in PRESETS:
        raise _fail(where, "strategy", f"{name!r} is not one of {sorted(PRESETS)}")
    preset = PRESETS[name]
    out = {**preset, **{k: data[k] for k in TOP_LEVEL if k in data}, "strategy": name}
    for section in ("asha", "race"):
        if section in preset or section in data:
            out[section] = {**preset.get(section, {}), **(data.get(section) or {})}
    return out


def parse_strategy(data: dict[str, Any], where: str, epochs: int) -> Strategy:
    """Validate a space's strategy fields (its preset filled in); errors name the file and field."""
    given = data
    data = merged_with_preset(data, where)
    if "algorithm" not in data:
        raise _fail(where, "algorithm", f"is required (one of {list(ALGORITHMS)})")
    algorithm, scheduler = data.get("algorithm"), data.get("scheduler", "none")
    if algorithm not in ALGORITHMS:
        raise _fail(where, "algorithm", f"{algorithm!r} is not one of {list(ALGORITHMS)}")
    if scheduler not in SCHEDULERS:
        raise _fail(where, "scheduler", f"{scheduler!r} is not one of {list(SCHEDULERS)}")
    if algorithm == "grid" and "num_samples" in data:
        raise _fail(where, "num_samples", "a grid enumerates every point; drop num_samples (or use random)")
    if algorithm != "grid" and "num_samples" not in data:
        raise _fail(where, "num_samples", f"is required for algorithm '{algorithm}'")
    repeats, seed = _int(data, "repeats", 1, 1, where), _int(data, "seed", 0, 0, where)
    samples = _int(data, "num_samples", 0, 1, where) if "num_samples" in data else 0
    unique = data.get("unique", False)
    if not isinstance(unique, bool):
        raise _fail(where, "unique", f"expected true or false, got {unique!r}")
    asha = _section(data, "asha", {"grace_period", "grace_fraction", "reduction_factor", "metric", "rungs", "guard",
                                   "min_rho", "min_pairs", "hedge", "brackets"}, where)
    brackets = asha.get("brackets", 1)
    if isinstance(brackets, bool) or not isinstance(brackets, int) or brackets < 1:
        raise _fail(where, "asha.brackets", f"expected an integer >= 1, got {brackets!r}")
    if brackets > 1 and scheduler != "asha":
        raise _fail(where, "asha.brackets", "brackets are Ray's asynchronous Hyperband (scheduler: asha)")
    if given.get("asha") and scheduler == "none":
        raise _fail(where, "asha", "set scheduler: asha (or race) to use these settings")
    grace, reduction = asha.get("grace_period", 1), asha.get("reduction_factor", 3)
    fraction = asha.get("grace_fraction")
    if fraction is not None and "grace_period" not in asha:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise _fail(where, "asha.grace_fraction", f"expected a number in (0, 1), got {fraction!r}")
        grace = int(epochs * fraction) or epochs  # under one epoch: no rung (grace >= epochs)
    if not isinstance(grace, int) or grace < 1 or not isinstance(reduction, int) or reduction < 2:
        raise _fail(where, "asha", f"grace_period must be >= 1 and reduction_factor >= 2, got {asha}")
    if scheduler == "asha" and grace > epochs or "grace_period" in (given.get("asha") or {}) and grace > epochs:
        raise _fail(where, "asha.grace_period", f"{grace} is more than the {epochs} epochs of a trial")
    rungs = asha.get("rungs", 0)
    if isinstance(rungs, bool) or not isinstance(rungs, int) or rungs < 0:
        raise _fail(where, "asha.rungs", f"expected an integer >= 0 (0: every rung that fits), got {rungs!r}")
    rung_metric = asha.get("metric", "")
    if rung_metric and rung_metric not in RUNG_METRICS:
        raise _fail(where, "asha.metric", f"{rung_metric!r} is not one of {list(RUNG_METRICS)}")
    guard = _guard(asha, given, scheduler, where)
    race = _section(data, "race", {"first_seeds", "alpha", "test", "delta", "budget"}, where)
    if given.get("race") and scheduler != "race":
        raise _fail(where, "race", "set scheduler: race (or strategy: noise-aware) to use these settings")
    first = race.get("first_seeds", 1)
    if "first_seeds" not in (given.get("race") or {}) and isinstance(first, int):
        first = min(first, repeats)  # a preset's first block never asks for more seeds than the space allows
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= repeats:
        raise _fail(where, "race.first_seeds", f"expected an integer from 1 to repeats ({repeats}), got {first!r}")
    alpha, test = race.get("alpha", 0.1), race.get("test", "wilcoxon")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise _fail(where, "race.alpha", f"expected a number in (0, 1), got {alpha!r}")
    if test not in TESTS:
        raise _fail(where, "race.test", f"{test!r} is not one of {list(TESTS)}")
    delta = _number(race, "delta", 0.0, 0.0, math.inf, where, "race.")
    budget = _number(race, "budget", 0.0, 0.0, math.inf, where, "race.")
    if budget and budget < first:
        raise _fail(where, "race.budget", f"{budget:g} x points x epochs cannot pay the first block of {first} "
                                          f"seed(s); give at least {first} (or 0: no cap)")
    return Strategy(name=str(data["strategy"]), algorithm=algorithm, num_samples=samples, seed=seed, unique=unique,
                    repeats=repeats, scheduler=scheduler, grace_period=grace, reduction_factor=reduction, rungs=rungs,
                    rung_metric=rung_metric, first_seeds=first, alpha=float(alpha), test=test, delta=delta,
                    budget=budget, brackets=brackets, **guard)


def _number(section: dict[str, Any], key: str, default: float, low: float, high: float, where: str,
            prefix: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _fail(where, prefix + key, f"expected a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _guard(asha: dict[str, Any], given: dict[str, Any], scheduler: str, where: str) -> dict[str, Any]:
    """The rung guard and its knobs (a race's only)."""
    guard = asha.get("guard", "none")
    if guard not in GUARDS:
        raise _fail(where, "asha.guard", f"{guard!r} is not one of {list(GUARDS)}")
    if guard != "none" and scheduler != "race":
        raise _fail(where, "asha.guard", "a guard belongs to a race's rungs (scheduler: race)")
    pairs = asha.get("min_pairs", 4)
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 3:
        raise _fail(where, "asha.min_pairs", f"expected an integer >= 3, got {pairs!r}")
    return {"guard": guard, "min_rho": _number(asha, "min_rho", 0.6, -1.0, 1.0, where, "asha."),
            "min_pairs": pairs, "hedge": _number(asha, "hedge", 0.25, 0.0, 1.0, where, "asha.")}


def race_settings(space: Any) -> Any:
    """The settings of a space's race (`race.RaceSettings`): its strategy, its size, its epochs."""
    from vdes_tune.search.race import RaceSettings, RungSettings

    strategy, epochs = space.strategy, space.epochs
    rungs = strategy.rung_epochs(epochs)
    rung = RungSettings(epochs=rungs, key=strategy.rung_key(space.metric),
                        mode=strategy.rung_mode(space.metric, space.mode), keep=1 / strategy.reduction_factor,
                        guard=strategy.guard if rungs else "none", horizon=epochs, min_pairs=strategy.min_pairs,
                        min_rho=strategy.min_rho, hedge=strategy.hedge)
    return RaceSettings(first_seeds=strategy.first_seeds, max_seeds=strategy.repeats, alpha=strategy.alpha,
                        test=strategy.test, delta=strategy.delta, mode=space.mode, points=space.size, epochs=epochs,
                        budget=strategy.budget, rung=rung)



def build_search(space: Any, log_path: str = "") -> tuple[Any, Any]:
    """The strategy's searcher and scheduler. The searcher is Optuna's (grid points enqueued exactly, random or
    TPE), optionally never repeating a point; a race wraps it in the race's searcher (its record at
    `log_path`), and its scheduler is the race's rungs over the same race. Otherwise the scheduler is none or
    Ray's ASHA on the rung key; metric and mode are given to it, not to TuneConfig, so it may rank another
    metric than the searcher."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from vdes_tune.search.unique import UniquePoints

    strategy = space.strategy
    if strategy.algorithm == "optuna-tpe":
        sampler = optuna.samplers.TPESampler(seed=strategy.seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=strategy.seed)
    # A grid is its points enqueued in order: each trial takes the next one, exactly once. A race's grid is
    # shuffled by the strategy's seed: an asynchronous rung judges a point against those that came before it,
    # so its fate must not depend on where the point sits in the YAML.
    points = space.grid() if strategy.algorithm == "grid" else None
    if points and strategy.races:
        random.Random(strategy.seed).shuffle(points)
    searcher = OptunaSearch(space.define_by_run(), metric=space.metric, mode=space.mode, sampler=sampler,
                            points_to_evaluate=points)
    if strategy.unique and strategy.algorithm != "grid":
        searcher = UniquePoints(searcher, space.grid() if space.finite else None)
    key, mode = strategy.rung_key(space.metric), strategy.rung_mode(space.metric, space.mode)
    if strategy.races:
        from vdes_tune.search.race import Race
        from vdes_tune.search.race_searcher import RaceScheduler, RaceSearcher

        settings = race_settings(space)
        racing = RaceSearcher(searcher, Race(settings), log_path)
        return racing, RaceScheduler(racing, key) if settings.rung.epochs else None
    if strategy.scheduler == "none":
        return searcher, None
    from ray.tune.schedulers import ASHAScheduler

    # Ray's ASHA puts its last rung at max_t: a lower max_t keeps only the first `rungs` rungs. An unset rung
    # metric ranks the objective itself.
    top = strategy.grace_period * strategy.reduction_factor ** (strategy.rung_count(space.epochs) - 1)
    return searcher, ASHAScheduler(time_attr="epoch", metric=key if strategy.rung_metric else space.metric,
                                   mode=mode, max_t=space.epochs if not strategy.rungs else top,
                                   grace_period=strategy.grace_period, reduction_factor=strategy.reduction_factor,
                                   brackets=strategy.brackets)
