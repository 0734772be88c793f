"""Recorded learning curves and search replays: how often does a search strategy find the true best, at what cost?

record   trains every point of a grid space for every seed and keeps each epoch's validation metrics in one
         Parquet table (benchmarks/data/); resumes where it stopped. Seeds 0..S-1 are what a search may draw
         (the seeds a live search trains: train.seed + repeat), the last --holdout seeds are the truth's only.
replay   runs each strategy many times against a table through the project's own search code (Tuner,
         searcher, scheduler, repeat policy, export), a replay trainable reading the curves instead of
         training, and prints the probability of ending within 0.02 F1 of the true best, regret and cost.
live     runs one strategy as a real search on the table's phantom and scores where it ends by the truth.
truth    prints a table's truth: each point's mean over the held-out seeds and how stable the top is.

    python benchmarks/curves.py record [--space benchmarks/data/table2-space.yaml] [--patients 100]
        [--crop-size 64] [--seeds 16] [--holdout 6] [--phantom-seed 0] [--workers 2] [--out TABLE] [--work DIR]
    python benchmarks/curves.py replay --table benchmarks/data/curves-table2.parquet [--replays 100]
    python benchmarks/curves.py live --table benchmarks/data/curves-table2.parquet [--strategy noise-aware]
    python benchmarks/curves.py truth --table benchmarks/data/curves-table2.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
DEFAULT_SPACE = DATA / "table2-space.yaml"
DEFAULT_TABLE = DATA / "curves-table2.parquet"

_FRAMES: dict[str, Any] = {}


def _commit() -> str:
    """The checkout's commit, marked `-dirty` when it has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _run_curve(space: Any, index: int, point: dict[str, Any], seed: int, work: str, out: str) -> float:
    """Train one (point, seed) without the test split and write its per-epoch validation metrics."""
    import torch

    from vdes_tune.config import to_dict
    from vdes_tune.training.classify import SEARCH_SPLITS, load_frames, prepare_classification
    from vdes_tune.workspace import Workspace, write_json

    torch.set_num_threads(1)  # what a 1-CPU search trial uses, so a live trial repeats these numbers
    cfg = space.train_config(point, seed=seed)
    workspace = Workspace.at(work)
    if work not in _FRAMES:
        _FRAMES[work] = load_frames(cfg, workspace, SEARCH_SPLITS)
    run = prepare_classification(cfg, workspace, _FRAMES[work])
    fitter = run.fitter(keep_best_state=False)
    rows = []
    while not fitter.done:
        r = fitter.step()
        val = r["val"]
        rows.append({"epoch": r["epoch"] + 1, "val_f1": val["f1"], "val_roc_auc": val["roc_auc"],
                     "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
                     "train_loss": r.get("train_loss", float("nan")), "seconds": r["seconds"]})
    write_json(Path(out), {"point": index, "values": point, "seed": seed, "config": to_dict(cfg), "rows": rows,
                           "crops": run.crops})
    return sum(r["seconds"] for r in rows)


def prepare_dataset(synth: Any, ingest_cfg: Any, work: Path, cpus: int) -> Any:
    """The phantom of `synth` ingested with `ingest_cfg` under `work` (made once; ingest skips itself after)."""
    from vdes_tune.phantom.dataset import write_dataset
    from vdes_tune.runtime import ray_session
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    raw = work / "raw"
    if not (raw / ".complete").is_file():
        write_dataset(synth, raw)
        (raw / ".complete").write_text("")
    with ray_session(num_cpus=cpus, log_dir=work / "logs", name="ingest"):
        return ingest.run(ingest_cfg, Workspace.at(work / "work"), raw)


def record(args: argparse.Namespace) -> None:
    """Record (or resume recording) the curves of every point x seed of a grid space."""
    import pandas as pd

    from vdes_tune import __version__
    from vdes_tune.config import IngestConfig, SynthConfig, to_dict
    from vdes_tune.search.curves import write_table
    from vdes_tune.search.space import load_space
    from vdes_tune.workspace import Workspace, write_json

    space = load_space(args.space, args.set)
    if space.strategy.algorithm != "grid":
        sys.exit(f"{args.space}: recording needs a grid space (every point is trained)")
    if not 0 < args.holdout < args.seeds:
        sys.exit(f"--holdout must be between 1 and --seeds - 1 ({args.seeds - 1}), got {args.holdout}")
    points = space.grid()
    base = space.train_config({}).seed
    seeds = [base + s for s in range(args.seeds)]
    search_seeds, truth_seeds = seeds[:-args.holdout], seeds[-args.holdout:]
    synth = SynthConfig(patients=args.patients, size="small", seed=args.phantom_seed, signal=args.signal)
    ingest_cfg = IngestConfig(crop_size=args.crop_size, qa_samples=2)
    out = Path(args.out)
    work = Path(args.work or ROOT / "bench-work" / f"curves-{out.stem}").resolve()
    settings = {"space": space.source, "phantom": to_dict(synth), "ingest": to_dict(ingest_cfg)}
    made = work / "record.json"
    before = json.loads(made.read_text()) if made.is_file() else None
    if before and before["settings"] != json.loads(json.dumps(settings)):
        sys.exit(f"{work}: recorded with other settings ({made}); pass another --work or delete it")
    work.mkdir(parents=True, exist_ok=True)
    # The commit that trains the first runs; a resumed recording adds the one that finished it.
    commits = (before or {}).get("commits", []) + [_commit()]
    write_json(made, {"settings": settings, "commits": list(dict.fromkeys(commits))})
    ws = Workspace.at(work / "work")
    summary = prepare_dataset(synth, ingest_cfg, work, args.workers)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    # Seed-major order: an interrupted recording holds whole seeds, the first ones.
    jobs = [(i, p, s, runs / f"p{i:03d}-s{s:04d}.json") for s in seeds for i, p in enumerate(points)]
    todo = [j for j in jobs if not j[3].is_file()]
    print(f"[record] {len(points)} points x {len(seeds)} seeds x {space.epochs} epochs: {len(jobs) - len(todo)} "
          f"of {len(jobs)} runs on disk, {len(todo)} to train with {args.workers} worker(s)", flush=True)
    start = time.perf_counter()
    if todo:
        import multiprocessing

        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_curve, space, i, p, s, str(ws.root), str(f)): (i, s) for i, p, s, f in todo}
            for n, fut in enumerate(as_completed(futures), 1):
                i, s = futures[fut]
                seconds = fut.result()
                elapsed = time.perf_counter() - start
                print(f"[record] {n}/{len(todo)} point {i} seed {s}: {seconds:.0f} s; elapsed {elapsed / 60:.1f} "
                      f"min, about {elapsed / n * (len(todo) - n) / 60:.0f} min left", flush=True)
    rows, crops = [], None
    for i, p, s, f in jobs:
        run = json.loads(f.read_text())
        crops = run["crops"]
        for r in run["rows"]:
            rows.append({"point": i, **p, "seed": s, **r})
    frame = pd.DataFrame(rows)
    meta = {
        "space": space.source, "space_name": space.name, "params": list(space.searched), "arch": list(space.arch),
        "epochs": space.epochs, "search_seeds": search_seeds, "truth_seeds": truth_seeds,
        "phantom": to_dict(synth), "ingest": to_dict(ingest_cfg), "crops": crops,
        "table1": summary.table1, "commit": list(dict.fromkeys(commits))[0], "commits": list(dict.fromkeys(commits)),
        "vdes_tune": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "threads_per_run": 1, "workers": args.workers, "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "train_seconds": float(frame["seconds"].sum()),
    }
    write_table(frame, meta, out)
    print(f"[record] wrote {out} ({len(frame)} rows, {out.stat().st_size / 1024:.0f} KiB); training time "
          f"{frame['seconds'].sum() / 60:.1f} min over {args.workers} worker(s)", flush=True)
    print_truth(out)


def print_truth(path: Path) -> None:
    """Each point's true mean (held-out seeds), its search-seed mean, and the top's bootstrap stability."""
    from vdes_tune.search.curves import read_table, top_stability, truth

    table = read_table(path)
    found = truth(table)
    print(f"truth of {path}: {len(found)} points; truth seeds {list(table.truth_seeds)}, search seeds "
          f"{list(table.search_seeds)}; best-validation-epoch val F1")
    cols = [*table.params, "true_mean", "true_se", "search_mean"]
    print(found[cols].to_string(index=False, formatters={c: (lambda v: f"{v:g}") for c in table.params if found[c].dtype.kind == "f"}, float_format=lambda v: f"{v:.4f}"))
    stable = top_stability(table)
    print(f"top stability (bootstrap of the {len(table.truth_seeds)} truth seeds, {stable['draws']} draws): "
          f"point {stable['best_point']} is best in {stable['p_same_best']:.0%}; within 0.02 of the draw's best "
          f"in {stable['p_best_within_tolerance']:.0%}; best-point shares {stable['p_best']}")


# The strategies a replay compares, as edits of the table's space. Random and TPE get the samples and seeds
# per point of today's benchmark search.
def strategies(table: Any) -> list[Any]:
    """The replayed strategies for a table (the paper's protocol uses every search seed)."""
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
        ReplayStrategy("noise-aware", {"strategy": "noise-aware", "repeats": every}),
    ]


def ablations(table: Any) -> list[Any]:
    """The noise-aware preset and its variants, one part changed at a time (`replay --ablation`): the
    rung metric (ROC-AUC, loss or F1), the rungs (one keeping half, every one that fits at rf 3, none), the
    indifference zone (delta 0.02 or none), the paired test and the first block. Each variant is written out in
    full (the preset's own settings, 12 epochs: one ROC-AUC rung at epoch 3 keeping half), so that a change of
    the preset does not change what a variant name means."""
    from vdes_tune.search.replay import ReplayStrategy

    race = {"first_seeds": 2, "alpha": 0.1, "test": "wilcoxon", "delta": 0.02}
    one_rung = {"grace_period": 3, "reduction_factor": 2, "rungs": 1}
    every_rung = {"grace_period": 3, "reduction_factor": 3, "rungs": 0}
    no_rungs = {"grace_period": table.epochs, "reduction_factor": 2, "rungs": 0}
    variants = {
        "na-loss-1-rung": ({**one_rung, "metric": "val_loss"}, {}),
        "na-f1-1-rung": ({**one_rung, "metric": "val_f1"}, {}),
        "na-roc-rungs": ({**every_rung, "metric": "val_roc_auc"}, {}),
        "na-loss-rungs": ({**every_rung, "metric": "val_loss"}, {}),
        "na-f1-rungs": ({**every_rung, "metric": "val_f1"}, {}),
        "na-no-rungs": (no_rungs, {}),
        "na-roc-1-rung-no-tie": ({**one_rung, "metric": "val_roc_auc"}, {"delta": 0.0}),
        "na-no-rungs-no-tie": (no_rungs, {"delta": 0.0}),
        "na-roc-1-rung-t-test": ({**one_rung, "metric": "val_roc_auc"}, {"test": "t"}),
        "na-roc-1-rung-first-1": ({**one_rung, "metric": "val_roc_auc"}, {"first_seeds": 1}),
        "na-roc-1-rung-first-3": ({**one_rung, "metric": "val_roc_auc"}, {"first_seeds": 3}),
    }
    every = len(table.search_seeds)
    return [ReplayStrategy(REFERENCE, {"strategy": "noise-aware", "repeats": every})] + [
        ReplayStrategy(name, {"strategy": "noise-aware", "repeats": every, "asha": asha, "race": {**race, **edit}})
        for name, (asha, edit) in variants.items()]


def _replay_jobs(table_path: str, jobs: list[tuple[str, list[int]]], truth: dict[int, float]) -> list[dict]:
    """Run some batches of replays one after another (a Ray task: several run side by side on one Ray)."""
    import optuna

    from vdes_tune.search.curves import read_table
    from vdes_tune.search.replay import replay_batch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = read_table(table_path)
    by_name = {s.name: s for s in strategies(table) + ablations(table)}
    return [row for name, batch in jobs for row in replay_batch(table, by_name[name], batch, truth)]


def replay(args: argparse.Namespace) -> None:
    """Replay every strategy `--replays` times against a table; print and save the comparison."""
    import ray

    from vdes_tune.runtime import ray_session
    from vdes_tune.search.curves import read_table, truth

    table = read_table(args.table)
    true = truth(table)["true_mean"].to_dict()
    names = [s.name for s in strategies(table) + ablations(table)]
    chosen = args.strategies.split(",") if args.strategies else [s.name for s in (
        ablations(table) if args.ablation else strategies(table))]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        sys.exit(f"--strategies: unknown {unknown}; known: {names}")
    batches = [list(range(i, min(i + args.batch, args.replays))) for i in range(0, args.replays, args.batch)]
    jobs = [(name, b) for b in batches for name in chosen]
    # Environment of the drivers and trials: Tune's per-result files and state snapshots are not needed here.
    env = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_GLOBAL_CHECKPOINT_S": "100000", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
           "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}
    os.environ.update(env)
    start = time.perf_counter()
    rows: list[dict] = []
    with ray_session(num_cpus=max(2, args.parallel), log_dir=Path(args.log_dir), name="replay"):
        task = ray.remote(num_cpus=0, runtime_env={"env_vars": env})(_replay_jobs)
        chunks = [jobs[i::args.parallel] for i in range(args.parallel)]
        pending = [task.remote(str(Path(args.table).resolve()), c, true) for c in chunks if c]
        for out in ray.get(pending):
            rows += out
    wall = time.perf_counter() - start
    summary = summarise(table, rows, wall)
    print_summary(table, summary, args, wall)
    tail = "-ablation" if args.ablation else ""
    out = Path(args.out or DATA / f"replays-table2{tail}.json")
    args.figure = args.figure or str(ROOT / "docs" / "figures" / f"search-replays{tail}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({"table": str(args.table), "replays": args.replays, "batch": args.batch,
                       "parallel": args.parallel, "wall_s": wall, "commit": _commit(), "summary": summary},
                      indent=1, default=float)
    # The summary stays readable; the runs, one per line, keep the file small.
    out.write_text(head[:-2] + ',\n "runs": [\n' + ",\n".join(
        json.dumps(r, separators=(",", ":"), default=float) for r in rows) + "\n ]\n}\n")
    if args.figure:
        figure(summary, Path(args.figure))
    print(f"wrote {out}" + (f" and {args.figure}" if args.figure else ""))


def summarise(table: Any, rows: list[dict], wall: float) -> list[dict]:
    """Per strategy: P(within 0.02 of the true best) with its Wilson 95% interval over replays; the same
    probability averaged over bootstrap draws of the truth seeds (the truth's own uncertainty) with the 2.5-97.5%
    range over draws; mean regret; cost."""
    import statistics

    import numpy as np

    from vdes_tune.search.curves import truth_draws
    from vdes_tune.search.replay import TOLERANCE, paper_cost, wilson

    full = paper_cost(table)
    draws = truth_draws(table)
    close = draws.ge(draws.max(axis=1) - TOLERANCE - 1e-12, axis=0)  # draws x points: within the draw's best
    out = []
    for name in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == name]
        hits = sum(r["within"] for r in mine)
        low, high = wilson(hits, len(mine))
        per_draw = close[[r["point"] for r in mine]].mean(axis=1).to_numpy()  # P over replays, per truth draw
        out.append({"strategy": name, "replays": len(mine), "p_within": hits / len(mine), "ci_low": low,
                    "ci_high": high, "p_within_truth_boot": float(per_draw.mean()),
                    "truth_boot_low": float(np.percentile(per_draw, 2.5)),
                    "truth_boot_high": float(np.percentile(per_draw, 97.5)),
                    "mean_regret": statistics.fmean(r["regret"] for r in mine),
                    "cost": statistics.fmean(r["seed_epochs"] for r in mine) / full,
                    "seed_epochs": statistics.fmean(r["seed_epochs"] for r in mine),
                    "seconds_per_replay": statistics.fmean(r["seconds"] for r in mine),
                    "points_chosen": dict(sorted(
                        {str(p): sum(r["point"] == p for r in mine) for p in {r["point"] for r in mine}}.items()))})
    reference = {r["replay"]: r["within"] for r in rows if r["strategy"] == REFERENCE}
    for s in out:
        s["versus_" + REFERENCE] = mcnemar(reference, {r["replay"]: r["within"] for r in rows
                                                       if r["strategy"] == s["strategy"]})
    return out


REFERENCE = "noise-aware"  # the strategy every other is paired with (same replay: same seeds drawn)


def mcnemar(ref: dict[int, bool], other: dict[int, bool]) -> dict[str, Any]:
    """Paired comparison of two strategies' hits over the replays both ran (common seed draws): the replays
    only the reference got right, only the other got right, and the exact two-sided McNemar p (binomial)."""
    from scipy import stats

    shared = sorted(set(ref) & set(other))
    only_ref = sum(ref[k] and not other[k] for k in shared)
    only_other = sum(other[k] and not ref[k] for k in shared)
    n = only_ref + only_other
    p = float(stats.binomtest(only_ref, n, 0.5).pvalue) if n else 1.0
    return {"replays": len(shared), "only_reference": only_ref, "only_other": only_other, "p": p}


def print_summary(table: Any, summary: list[dict], args: argparse.Namespace, wall: float) -> None:
    """The comparison as a Markdown table."""
    from vdes_tune.search.replay import paper_cost

    print(f"{args.replays} replays per strategy of {args.table}: {len(table.points)} points, "
          f"{len(table.search_seeds)} search seeds, {table.epochs} epochs; paper protocol = {paper_cost(table)} "
          f"seed-epochs; trials one at a time; wall {wall / 60:.1f} min ({args.parallel} drivers, batches of "
          f"{args.batch} replays per Tuner run)")
    print(f"| strategy | P(within 0.02 of true best) [95% CI] | same, truth bootstrapped [2.5-97.5%] | mean regret | "
          f"cost (of paper) | seed-epochs | s per replay | vs {REFERENCE}: only it / only this (McNemar p) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        versus = s["versus_" + REFERENCE]
        paired = "" if s["strategy"] == REFERENCE or not versus["replays"] else \
            f"{versus['only_reference']} / {versus['only_other']} ({versus['p']:.3g})"
        print(f"| {s['strategy']} | {s['p_within']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}] | "
              f"{s['p_within_truth_boot']:.2f} [{s['truth_boot_low']:.2f}, {s['truth_boot_high']:.2f}] | "
              f"{s['mean_regret']:.4f} | {s['cost']:.3f} | {s['seed_epochs']:.0f} | {s['seconds_per_replay']:.1f} | "
              f"{paired} |")


def figure(summary: list[dict], path: Path) -> None:
    """Probability of ending within 0.02 F1 of the true best against cost, one point per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Strategies crowd at similar costs, so each has its own colour and marker, named in a legend.
    fig, ax = plt.subplots(figsize=(9, 4.6))
    markers, colours = "osD^vP*Xh<>p", plt.get_cmap("tab20").colors
    for i, s in enumerate(summary):
        low, high = max(0.0, s["p_within"] - s["ci_low"]), max(0.0, s["ci_high"] - s["p_within"])  # rounding at 1
        ax.errorbar(s["cost"], s["p_within"], yerr=[[low], [high]], fmt=markers[i % len(markers)],
                    color=colours[i % len(colours)], capsize=3, label=f"{s['strategy']} ({s['p_within']:.2f}, "
                                                                    f"cost {s['cost']:.2f})")
    ax.axhline(0.9, ls=":", c="grey")
    ax.axvline(0.25, ls=":", c="grey")
    ax.set_xscale("log")
    ax.set_xlabel("cost: seed-epochs as a fraction of the paper's protocol (log)")
    ax.set_ylabel("P(exported point within 0.02 F1 of true best)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title("Search strategies replayed on recorded curves (95% Wilson intervals)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def live(args: argparse.Namespace) -> None:
    """A live search (real training) of the table's space with a replayed strategy, on the table's own phantom:
    where it ends by the table's truth, what it cost, and whether its trials trained the recorded curves."""
    import pandas as pd

    from vdes_tune.config import IngestConfig, SynthConfig, from_dict
    from vdes_tune.runtime import ray_session
    from vdes_tune.search.curves import best_epoch_rows, read_table, truth
    from vdes_tune.search.export import export, leaderboard, load_experiment
    from vdes_tune.search.replay import TOLERANCE, paper_cost
    from vdes_tune.search.runner import SearchOptions, run_search

    table = read_table(args.table)
    strategy = {s.name: s for s in strategies(table) + ablations(table)}[args.strategy]
    space = strategy.space(table, 0)
    work = Path(args.work or ROOT / "bench-work" / f"curves-{Path(args.table).stem}").resolve()
    prepare_dataset(from_dict(SynthConfig, table.meta["phantom"]), from_dict(IngestConfig, table.meta["ingest"]),
                    work, 2)
    name = f"live-{args.strategy}"
    start = time.perf_counter()
    with ray_session(num_cpus=args.concurrent, log_dir=work / "logs", name="live"):
        run_search(space, work / "work", SearchOptions(name=name, max_concurrent=args.concurrent, cpus_per_trial=1))
    wall = time.perf_counter() - start
    out = export(name, work / "work")
    exp = load_experiment(str(work / "work" / "search" / name))
    board = leaderboard(exp)
    true = truth(table)["true_mean"]
    chosen = table.point_of(next(iter(yaml_load(out["best"])["architectures"].values()))["searched"])
    cost = int(board["seed_epochs"].sum())
    recorded = best_epoch_rows(table.frame).set_index(["point", "seed"])["val_f1"]
    same = [float(v) == float(recorded[(table.point_of(t.config), int(s))])
            for t in exp.trials for s, v in (t.last_result.get("seed_scores") or {}).items()]
    print(f"live {args.strategy} search ({args.concurrent} trials at a time, 1 CPU each): {len(exp.trials)} trials, "
          f"{cost} seed-epochs = {cost / paper_cost(table):.3f} of the paper protocol, wall {wall / 60:.1f} min")
    print(f"exported point {chosen} {table.values_of(chosen)}: true {true[chosen]:.4f}, true best {true.max():.4f}, "
          f"regret {true.max() - true[chosen]:.4f}: {'within' if true.max() - true[chosen] <= TOLERANCE else 'NOT within'}"
          f" {TOLERANCE}")
    print(f"seed scores equal to the recorded curves: {sum(same)} of {len(same)}")
    print(pd.DataFrame(board)[[*table.params, "seeds", "val_f1", "seed_epochs", "race", "race_why"]].to_string(
        index=False))


def yaml_load(path: str) -> Any:
    """A YAML file's content."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


def main() -> None:
    """Command line: record, replay, live or truth."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="train every point x seed and write the table")
    rec.add_argument("--space", default=str(DEFAULT_SPACE), help="a grid search-space YAML (or shipped name)")
    rec.add_argument("--set", action="append", default=[], help="KEY=VALUE edit of the space (as in search)")
    rec.add_argument("--patients", type=int, default=100)
    rec.add_argument("--crop-size", type=int, default=64)
    rec.add_argument("--seeds", type=int, default=16, help="seeds per point, truth seeds included")
    rec.add_argument("--holdout", type=int, default=6, help="the last seeds, kept for the truth only")
    rec.add_argument("--phantom-seed", type=int, default=0)
    rec.add_argument("--signal", default="paper", choices=["paper", "null", "des-only"])
    rec.add_argument("--workers", type=int, default=2)
    rec.add_argument("--out", default=str(DEFAULT_TABLE))
    rec.add_argument("--work", default="", help="where runs and the dataset are kept (default bench-work/)")
    rep = sub.add_parser("replay", help="replay the strategies against a table")
    rep.add_argument("--table", default=str(DEFAULT_TABLE))
    rep.add_argument("--replays", type=int, default=100)
    rep.add_argument("--strategies", default="", help="comma-separated names (default: every main strategy)")
    rep.add_argument("--ablation", action="store_true", help="replay the noise-aware variants instead")
    rep.add_argument("--batch", type=int, default=25, help="replays of a strategy per Tuner run")
    rep.add_argument("--parallel", type=int, default=4, help="Tuner runs at once (drivers on one Ray instance)")
    rep.add_argument("--out", default="", help="the JSON (default benchmarks/data/replays-table2[-ablation].json)")
    rep.add_argument("--figure", default="", help="the figure (default docs/figures/search-replays[-ablation].png)")
    rep.add_argument("--log-dir", default=str(ROOT / "bench-work" / "logs"))
    lv = sub.add_parser("live", help="a live search with a strategy on the table's phantom, scored by its truth")
    lv.add_argument("--table", default=str(DEFAULT_TABLE))
    lv.add_argument("--strategy", default="noise-aware")
    lv.add_argument("--concurrent", type=int, default=2)
    lv.add_argument("--work", default="", help="where the phantom is ingested (default: the recording's)")
    tr = sub.add_parser("truth", help="print a table's truth")
    tr.add_argument("--table", default=str(DEFAULT_TABLE))
    args = parser.parse_args()
    if args.command == "record":
        record(args)
    elif args.command == "replay":
        replay(args)
    elif args.command == "live":
        live(args)
    elif args.command == "truth":
        print_truth(Path(args.table))


if __name__ == "__main__":
    main()
