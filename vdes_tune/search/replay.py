"""Replaying a search against recorded curves: the live search's Tuner, searcher, scheduler and export, with
a trial that reads the curve of (point, drawn seed) instead of training (`trainable.ReplaySource`).

A replay draws which recorded search seeds a trial's seeds are (one draw for all points of the replay,
as a live search gives every point the same seeds), runs the strategy to its end, exports the choice the
way `vdes-tune export` does, and scores it against the table's truth (held-out seeds no replay reads).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vdes_tune.search.curves import CurveTable
from vdes_tune.search.space import SearchSpace, parse_space

TOLERANCE = 0.02


@dataclass(frozen=True)
class ReplayStrategy:
    """A named strategy to replay: edits of the table's space (YAML fields), and how seeds are drawn."""

    name: str
    fields: dict[str, Any]
    draw: str = "subsample"  # subsample: distinct search seeds; bootstrap: with replacement (all seeds)

    def space(self, table: CurveTable, replay: int) -> SearchSpace:
        """The table's space with this strategy's fields; random searchers get the replay's own seed."""
        from vdes_tune.search.strategy import TOP_LEVEL

        data = {k: v for k, v in table.meta["space"].items() if k not in TOP_LEVEL}
        data.update({"algorithm": "grid", **self.fields, "name": f"replay-{self.name}", "seed": replay})
        return parse_space(data, f"replay strategy {self.name}")


def draw_seeds(table: CurveTable, count: int, draw: str, rng: np.random.Generator) -> tuple[int, ...]:
    """Which recorded search seeds a replay's seeds 0..count-1 are."""
    pool = np.array(table.search_seeds)
    if count > len(pool) and draw != "bootstrap":
        raise ValueError(f"{count} seeds asked, the table has {len(pool)} search seeds")
    picked = rng.choice(pool, size=count, replace=draw == "bootstrap")
    return tuple(int(s) for s in picked)


def replay_once(table: CurveTable, strategy: ReplayStrategy, replay: int, truth: dict[int, float],
                concurrency: int = 2, storage: str | None = None) -> dict[str, Any]:
    """One replay of `strategy` (draw number `replay`): the exported point, its true value, regret and cost."""
    from vdes_tune.search.export import best_per_architecture, leaderboard, load_experiment
    from vdes_tune.search.runner import build_tuner
    from vdes_tune.search.storage import SIDECAR, write_text
    from vdes_tune.search.trainable import ReplaySource, TrialContext

    space = strategy.space(table, replay)
    rng = np.random.default_rng([replay, _stable_hash(strategy.name)])
    seed_map = draw_seeds(table, space.strategy.repeats, strategy.draw, rng)
    ctx = TrialContext(space, "", 0, 0.0, False, 1.0 / max(concurrency, 1), None,
                       ReplaySource(table.path, seed_map))
    folder = Path(storage or tempfile.mkdtemp(prefix="vdes-replay-"))
    name = f"{strategy.name}-{replay}"
    path = f"{folder}/{name}"
    write_text(f"{path}/{SIDECAR}", json.dumps({"experiment": name, "space": space.source,
                                                "space_path": space.path}))
    start = time.perf_counter()
    try:
        build_tuner(space, ctx, str(folder), name, concurrency, 0, callbacks=[]).fit()
        exp = load_experiment(path)
        board = leaderboard(exp)
        chosen = best_per_architecture(exp, board)
    finally:
        if storage is None:
            shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - start
    entry = next(iter(chosen.values()), None)
    point = table.point_of(entry["searched"]) if entry else None
    best = max(truth.values())
    value = truth[point] if point is not None else float("nan")
    return {"strategy": strategy.name, "replay": replay, "seeds_drawn": list(seed_map), "point": point,
            "true_value": value, "regret": best - value if point is not None else float("nan"),
            "within": bool(point is not None and best - value <= TOLERANCE + 1e-12),
            "seed_epochs": int(board["seed_epochs"].sum()) if len(board) else 0, "trials": len(board),
            "seconds": seconds, "estimate": entry["objective"][space.metric] if entry else float("nan"),
            "seeds_of_choice": entry["objective"]["repeats"] if entry else 0,
            "versus_runner_up": (entry or {}).get("versus_runner_up", {}).get("verdict", "")}


def _stable_hash(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


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
