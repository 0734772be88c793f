"""Strategies replayed against recorded tables, and the preset chosen by leave-one-table-out (`curves.py replay`
and `curves.py matrix` call these).

A replay runs a strategy's own searcher and scheduler over a table's curves (`vdes_tune.search.simulate`, held
to the Tuner path by a test; `--engine tune` runs the Tuner itself), exports the choice as `vdes-tune export`
does and scores it by the table's truth. Replay k of every strategy draws the same seeds, so strategies are
paired replay by replay (McNemar against grid-2 on the same draws).

Leave-one-table-out (Probst et al. 2019, "Tunability"): for each table, the candidate with the best worst
case over the *other* tables (within grid-2's cost on each of them) is chosen, then scored on the table it
never saw. The default is the candidate with the best worst case over every table, within grid-2's cost.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REFERENCE = "grid-2"  # every strategy is paired with it on the same draws
GUARD_NAMES = ("none", "self-check", "extrapolate", "hedge")
_TABLES: dict[str, Any] = {}


def strategies(table: Any) -> list[Any]:
    """The strategies a table's comparison replays: the paper's protocol, the plain grids, random and TPE at
    grid-2's cost, TPE with ASHA, grid-2 under Ray's asynchronous Hyperband (three brackets on ROC-AUC from a
    quarter of the epochs: Ray's own hedge against early rungs), and the noise-aware preset as shipped."""
    from vdes_tune.search.replay import ReplayStrategy

    every = len(table.search_seeds)
    n = len(table.points)
    return [
        ReplayStrategy("paper", {"repeats": every}),
        ReplayStrategy("grid-1", {"repeats": 1}),
        ReplayStrategy("grid-2", {"repeats": 2}),
        ReplayStrategy("grid-3", {"repeats": 3}),
        ReplayStrategy("random", {"algorithm": "random", "num_samples": n, "repeats": 2}),
        ReplayStrategy("tpe", {"algorithm": "optuna-tpe", "num_samples": n, "repeats": 2}),
        ReplayStrategy("tpe-asha", {"algorithm": "optuna-tpe", "num_samples": n, "repeats": 2, "scheduler": "asha",
                                    "asha": {"grace_period": 1, "reduction_factor": 3}}),
        ReplayStrategy("grid-2-hyperband", {"repeats": 2, "scheduler": "asha", "asha": {
            "grace_fraction": 0.25, "reduction_factor": 2, "metric": "val_roc_auc", "brackets": 3}}),
        ReplayStrategy("noise-aware", {"strategy": "noise-aware", "repeats": every}),
    ]


def candidates(table: Any) -> list[Any]:
    """The presets leave-one-table-out chooses among, each written out in full (so a change of the shipped
    preset does not change what a name means): no rung, or one ROC-AUC rung at a quarter or half of the epochs
    keeping the better half, under each guard; a first block of 1 or 2 seeds; Wilcoxon or t; every one
    racing up to all search seeds, ties within 0.02, alpha 0.1, the budget capped at grid-2's cost. Beside
    them, the preset the issue found wanting (one rung, no guard, no budget)."""
    from vdes_tune.search.replay import ReplayStrategy

    every = len(table.search_seeds)
    out = []
    for rung in ("none", "quarter", "half"):
        for guard in ("none",) if rung == "none" else GUARD_NAMES:
            for first in (1, 2):
                for test in ("wilcoxon", "t"):
                    asha = {"grace_period": table.epochs, "reduction_factor": 2} if rung == "none" else {
                        "grace_fraction": 0.25 if rung == "quarter" else 0.5, "reduction_factor": 2, "rungs": 1,
                        "metric": "val_roc_auc", "guard": guard}
                    race = {"first_seeds": first, "alpha": 0.1, "test": test, "delta": 0.02, "budget": 2}
                    name = f"race-{rung}" + (f"-{guard}" if rung != "none" else "") + f"-f{first}-{test[0]}"
                    out.append(ReplayStrategy(name, {"strategy": "noise-aware", "repeats": every, "asha": asha,
                                                     "race": race}))
    out.append(ReplayStrategy("previous-preset", {
        "strategy": "noise-aware", "repeats": every,
        "asha": {"grace_fraction": 0.25, "reduction_factor": 2, "rungs": 1, "metric": "val_roc_auc", "guard": "none"},
        "race": {"first_seeds": 2, "alpha": 0.1, "test": "wilcoxon", "delta": 0.02, "budget": 0}}))
    return out


def by_name(table: Any) -> dict[str, Any]:
    """Every named strategy of a table."""
    return {s.name: s for s in strategies(table) + candidates(table)}


def _table(path: str) -> Any:
    from vdes_tune.search.curves import read_table

    if path not in _TABLES:
        _TABLES[path] = read_table(path)
    return _TABLES[path]


def _simulate(path: str, names: list[str], replays: list[int]) -> list[dict]:
    """One worker's share: these strategies x replays on one table."""
    import optuna

    from vdes_tune.search.curves import truth
    from vdes_tune.search.simulate import simulate_replay

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = _table(path)
    true = truth(table)["true_mean"].to_dict()
    known = by_name(table)
    return [{**simulate_replay(table, known[n], r, true), "table": Path(path).stem} for n in names for r in replays]


def run_simulated(tables: list[str], names: list[str], replays: int, workers: int, chunk: int = 25) -> list[dict]:
    """Every named strategy `replays` times on every table, simulated, on a pool of `workers` processes."""
    jobs = [(t, [n], list(range(i, min(i + chunk, replays)))) for t in tables for n in names
            for i in range(0, replays, chunk)]
    rows: list[dict] = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for out in pool.map(_simulate, *zip(*jobs)):
            rows += out
    return rows


def run_tune(table_path: str, names: list[str], replays: int, parallel: int, batch: int, log_dir: Path) -> list[dict]:
    """Every named strategy `replays` times on one table through Tuner runs (batches of replays per run, drivers
    as Ray tasks of one job: each registers its trainable under its own name)."""
    import os

    import ray

    from vdes_tune.runtime import ray_session
    from vdes_tune.search.curves import truth

    table = _table(table_path)
    true = truth(table)["true_mean"].to_dict()
    batches = [list(range(i, min(i + batch, replays))) for i in range(0, replays, batch)]
    jobs = [(name, b) for b in batches for name in names]
    env = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_GLOBAL_CHECKPOINT_S": "100000", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
           "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}
    os.environ.update(env)
    rows: list[dict] = []
    with ray_session(num_cpus=max(2, parallel), log_dir=log_dir, name="replay"):
        # The drivers import this module by name: its folder goes on their path.
        path = os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]).rstrip(":")
        task = ray.remote(num_cpus=0, runtime_env={"env_vars": {**env, "PYTHONPATH": path}})(_tune_jobs)
        pending = [task.remote(str(Path(table_path).resolve()), jobs[i::parallel], true) for i in range(parallel)
                   if jobs[i::parallel]]
        for out in ray.get(pending):
            rows += [{**r, "table": Path(table_path).stem} for r in out]
    return rows


def _tune_jobs(table_path: str, jobs: list[tuple[str, list[int]]], truth: dict[int, float]) -> list[dict]:
    import optuna

    from vdes_tune.search.replay import replay_batch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = _table(table_path)
    known = by_name(table)
    return [row for name, batch in jobs for row in replay_batch(table, known[name], batch, truth)]


# --- summaries ---------------------------------------------------------------------------------------------------

def mcnemar(ref: dict[int, bool], other: dict[int, bool]) -> dict[str, Any]:
    """Paired comparison of two strategies' hits over the replays both ran (common seed draws): the replays only
    the reference got right, only the other got right, and the exact two-sided McNemar p (binomial)."""
    from scipy import stats

    shared = sorted(set(ref) & set(other))
    only_ref = sum(ref[k] and not other[k] for k in shared)
    only_other = sum(other[k] and not ref[k] for k in shared)
    n = only_ref + only_other
    p = float(stats.binomtest(only_ref, n, 0.5).pvalue) if n else 1.0
    return {"replays": len(shared), "only_reference": only_ref, "only_other": only_other, "p": p}


def summarise(table: Any, rows: list[dict]) -> list[dict]:
    """Per strategy on one table: P(within 0.02 of the true best) with its Wilson 95% interval over replays; the
    same averaged over bootstrap draws of the truth seeds (the truth's own uncertainty) with its 2.5-97.5%
    range; mean regret; cost in seed-epochs, as a multiple of grid-1's and as a fraction of the paper's
    protocol; McNemar against grid-2 on the same draws."""
    import numpy as np

    from vdes_tune.search.curves import truth_draws
    from vdes_tune.search.replay import TOLERANCE, paper_cost, wilson

    full = paper_cost(table)
    grid1 = len(table.points) * table.epochs
    draws = truth_draws(table)
    close = draws.ge(draws.max(axis=1) - TOLERANCE - 1e-12, axis=0)  # draws x points: within the draw's best
    reference = {r["replay"]: r["within"] for r in rows if r["strategy"] == REFERENCE}
    out = []
    for name in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == name]
        hits = sum(r["within"] for r in mine)
        low, high = wilson(hits, len(mine))
        per_draw = close[[r["point"] for r in mine]].mean(axis=1).to_numpy()  # P over replays, per truth draw
        cost = statistics.fmean(r["seed_epochs"] for r in mine)
        out.append({"strategy": name, "replays": len(mine), "p_within": hits / len(mine), "ci_low": low,
                    "ci_high": high, "p_within_truth_boot": float(per_draw.mean()),
                    "truth_boot_low": float(np.percentile(per_draw, 2.5)),
                    "truth_boot_high": float(np.percentile(per_draw, 97.5)),
                    "mean_regret": statistics.fmean(r["regret"] for r in mine),
                    "seed_epochs": cost, "of_grid1": cost / grid1, "of_paper": cost / full,
                    "max_seed_epochs": max(r["seed_epochs"] for r in mine),
                    "ms_per_replay": 1000 * statistics.fmean(r["seconds"] for r in mine),
                    "versus_grid2": mcnemar(reference, {r["replay"]: r["within"] for r in mine}),
                    "points_chosen": dict(sorted({str(p): sum(r["point"] == p for r in mine)
                                                  for p in {r["point"] for r in mine}}.items()))})
    return out


def print_table(table: Any, summary: list[dict], head: str) -> None:
    """One table's comparison as Markdown."""
    from vdes_tune.search.replay import paper_cost

    print(f"{head}: {len(table.points)} points, {len(table.search_seeds)} search seeds, {table.epochs} epochs; grid-1 = "
          f"{len(table.points) * table.epochs} seed-epochs, paper protocol = {paper_cost(table)}")
    print("| strategy | P(within 0.02 of true best) [95% CI] | truth bootstrapped [2.5-97.5%] | mean regret | "
          "seed-epochs | x grid-1 | of paper | vs grid-2: only grid-2 / only this (McNemar p) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        v = s["versus_grid2"]
        paired = "" if s["strategy"] == REFERENCE else f"{v['only_reference']} / {v['only_other']} ({v['p']:.2g})"
        print(f"| {s['strategy']} | {s['p_within']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}] | "
              f"{s['p_within_truth_boot']:.2f} [{s['truth_boot_low']:.2f}, {s['truth_boot_high']:.2f}] | "
              f"{s['mean_regret']:.4f} | {s['seed_epochs']:.0f} | {s['of_grid1']:.2f} | {s['of_paper']:.3f} | {paired} |")


# --- leave one table out ------------------------------------------------------------------------------------------

def eligible(cells: dict[str, dict], tables: list[str], cost_slack: float = 1e-9) -> bool:
    """A candidate may be chosen on these tables when its mean cost is within grid-2's on each."""
    return all(cells[t]["seed_epochs"] <= cells[t]["grid2_seed_epochs"] * (1 + cost_slack) for t in tables)


def rank_key(cells: dict[str, dict], tables: list[str]) -> tuple[float, float, float]:
    """Best worst case first; then the best mean; then the cheaper."""
    ps = [cells[t]["p_within"] for t in tables]
    return (min(ps), statistics.fmean(ps), -statistics.fmean(cells[t]["of_grid1"] for t in tables))


def choose(matrix: dict[str, dict[str, dict]], names: list[str], tables: list[str]) -> str | None:
    """The candidate with the best worst case over `tables`, within grid-2's cost on each."""
    ok = [n for n in names if eligible(matrix[n], tables)]
    return max(ok, key=lambda n: rank_key(matrix[n], tables)) if ok else None


def leave_one_out(matrix: dict[str, dict[str, dict]], names: list[str], tables: list[str]) -> list[dict]:
    """For each table: the candidate chosen on the others, and how it does on the one it never saw (nothing with
    a single table)."""
    out = []
    if len(tables) < 2:
        return out
    for held in tables:
        rest = [t for t in tables if t != held]
        chosen = choose(matrix, names, rest)
        cell = matrix[chosen][held] if chosen else {}
        out.append({"held_out": held, "chosen": chosen, "worst_on_others": rank_key(matrix[chosen], rest)[0]
                    if chosen else None, **{k: cell.get(k) for k in (
                        "p_within", "ci_low", "ci_high", "p_within_truth_boot", "seed_epochs", "of_grid1",
                        "grid2_seed_epochs", "grid2_p_within")}, "versus_grid2": cell.get("versus_grid2")})
    return out


def cells(summaries: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """strategy -> table -> its summary, with grid-2's cost and hit rate on that table beside it."""
    out: dict[str, dict[str, dict]] = {}
    for table, rows in summaries.items():
        grid2 = next(r for r in rows if r["strategy"] == REFERENCE)
        for r in rows:
            out.setdefault(r["strategy"], {})[table] = {**r, "grid2_seed_epochs": grid2["seed_epochs"],
                                                        "grid2_p_within": grid2["p_within"]}
    return out


def figure(matrix: dict[str, dict[str, dict]], names: list[str], tables: list[str], path: Path) -> None:
    """P(within 0.02) of each strategy on each table: a heat map, the cost beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array([[matrix[n][t]["p_within"] for t in tables] for n in names])
    fig, ax = plt.subplots(figsize=(1.2 * len(tables) + 4, 0.28 * len(names) + 1.2))
    image = ax.imshow(values, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    for i, n in enumerate(names):
        for j, t in enumerate(tables):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(tables)), tables, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.colorbar(image, ax=ax, label="P(within 0.02 F1 of the true best)")
    ax.set_title("Strategies replayed on every recorded table")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cost_figure(summary: list[dict], title: str, path: Path) -> None:
    """P(within 0.02) against cost (a multiple of grid-1's), one point per strategy, with Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.6))
    markers, colours = "osD^vP*Xh<>p", plt.get_cmap("tab20").colors
    for i, s in enumerate(summary):
        low, high = max(0.0, s["p_within"] - s["ci_low"]), max(0.0, s["ci_high"] - s["p_within"])
        ax.errorbar(s["of_grid1"], s["p_within"], yerr=[[low], [high]], fmt=markers[i % len(markers)],
                    color=colours[i % len(colours)], capsize=3,
                    label=f"{s['strategy']} ({s['p_within']:.2f}, x{s['of_grid1']:.2f})")
    ax.axhline(0.95, ls=":", c="grey")
    ax.axvline(2.0, ls=":", c="grey")
    ax.set_xscale("log")
    ax.set_xlabel("cost: seed-epochs as a multiple of grid-1's (log)")
    ax.set_ylabel("P(exported point within 0.02 F1 of true best)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    """fn(*args) and its wall seconds."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start
