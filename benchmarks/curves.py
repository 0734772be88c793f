"""Recorded learning curves and search replays: how often does a search strategy find the true best, at what cost?

record   trains every point of a grid space for every seed and keeps each epoch's validation metrics in one
         Parquet table (benchmarks/data/); resumes where it stopped. Seeds 0..S-1 are what a search may draw
         (the seeds a live search trains: train.seed + repeat), the last --holdout seeds are the truth's only.
replay   runs each strategy many times against a table through the project's own search code (searcher,
         scheduler, race, export; simulated without Tune's controller, or `--engine tune` through Tuner runs
         whose trials read the curves instead of training), and prints the probability of ending within 0.02
         F1 of the true best, regret and cost, each strategy paired with grid-2 on the same seed draws.
matrix   replays every strategy and candidate preset on every recorded table, chooses the preset by
         leave-one-table-out and prints the matrix, the held-out scores and the default.
live     runs one strategy as a real search on the table's phantom and scores where it ends by the truth.
front    what more GPU memory buys on a table whose space varies the memory (true F1 against estimated memory).
truth    prints a table's truth: each point's mean over the held-out seeds and how stable the top is.

    python benchmarks/curves.py record [--space benchmarks/data/table2-space.yaml] [--patients 100]
        [--crop-size 64] [--seeds 16] [--holdout 6] [--phantom-seed 0] [--workers 2] [--out TABLE] [--work DIR]
    python benchmarks/curves.py replay --table benchmarks/data/curves-table2.parquet [--replays 200] [--engine tune]
    python benchmarks/curves.py matrix [--replays 200]
    python benchmarks/curves.py live --table benchmarks/data/curves-table2.parquet [--strategy noise-aware]
    python benchmarks/curves.py truth --table benchmarks/data/curves-table2.parquet
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
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
    for name, fraction in (("quarter", 0.25), ("half", 0.5)):
        c = rung_character(table, fraction)
        print(f"{name} rung (epoch {c['epoch']}, best-so-far val ROC-AUC, mean over search seeds): the true best "
              f"ranks {c['best_rank']} of {c['points']}; Spearman with the true F1 {c['spearman']:.2f}")


def rung_character(table: Any, fraction: float) -> dict[str, Any]:
    """How well a rung at `fraction` of the epochs ranks a table's points: the true best's rank there and the
    Spearman correlation with the true F1 over all points (what decides whether a rung cuts the winner)."""
    from scipy.stats import spearmanr

    from vdes_tune.search.curves import truth

    epoch = int(table.epochs * fraction) or table.epochs
    early = table.frame[table.frame["seed"].isin(table.search_seeds) & (table.frame["epoch"] <= epoch)]
    at_rung = early.groupby(["point", "seed"])["val_roc_auc"].max().groupby("point").mean()
    true = truth(table)["true_mean"]
    ranks = at_rung.rank(ascending=False, method="min")
    return {"epoch": epoch, "points": len(true), "best_rank": int(ranks[true.index[0]]),
            "spearman": float(spearmanr(at_rung.reindex(true.index), true).statistic)}


def replay(args: argparse.Namespace) -> None:
    """Replay the strategies (or the named ones) `--replays` times against one table; print and save the
    comparison."""
    import replays as rp

    from vdes_tune.search.curves import read_table

    table = read_table(args.table)
    known = rp.by_name(table)
    chosen = args.strategies.split(",") if args.strategies else [s.name for s in rp.strategies(table)]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        sys.exit(f"--strategies: unknown {unknown}; known: {sorted(known)}")
    if rp.REFERENCE not in chosen:
        chosen.append(rp.REFERENCE)  # every strategy is paired with it
    if args.engine == "tune":
        rows, wall = rp.timed(rp.run_tune, args.table, chosen, args.replays, args.workers, args.batch,
                              Path(args.log_dir))
    else:
        rows, wall = rp.timed(rp.run_simulated, [args.table], chosen, args.replays, args.workers)
    summary = rp.summarise(table, rows)
    rp.print_table(table, summary, f"{args.replays} replays per strategy of {args.table} ({args.engine}, "
                                   f"{args.workers} workers, wall {wall / 60:.1f} min)")
    stem = Path(args.table).stem.removeprefix("curves-")
    out = Path(args.out or DATA / f"replays-{stem}.json")
    figure = Path(args.figure or ROOT / "docs" / "figures" / f"search-replays-{stem}.png")
    rp.cost_figure(summary, f"Strategies replayed on {stem} (95% Wilson intervals)", figure)
    _write_runs(out, {"table": str(args.table), "replays": args.replays, "engine": args.engine,
                      "workers": args.workers, "wall_s": wall, "commit": _commit(), "summary": summary}, rows)
    print(f"wrote {out} and {figure}")


def matrix(args: argparse.Namespace) -> None:
    """Every strategy and candidate preset replayed on every table; leave-one-table-out; the default."""
    import replays as rp

    from vdes_tune.search.curves import read_table

    tables = sorted(str(p) for p in (args.tables or sorted(DATA.glob("curves-*.parquet"))))
    names = list(dict.fromkeys(s.name for s in rp.strategies(read_table(tables[0])) + rp.candidates(
        read_table(tables[0]))))
    rows, wall = rp.timed(rp.run_simulated, tables, names, args.replays, args.workers)
    summaries = {Path(t).stem.removeprefix("curves-"): rp.summarise(read_table(t), [
        r for r in rows if r["table"] == Path(t).stem]) for t in tables}
    cells = rp.cells(summaries)
    short = list(summaries)
    candidates = [s.name for s in rp.candidates(read_table(tables[0]))]
    loto = rp.leave_one_out(cells, candidates, short)
    default = rp.choose(cells, candidates, short)
    print(f"{args.replays} replays of {len(names)} strategies on {len(tables)} tables (simulated, {args.workers} "
          f"workers): wall {wall / 60:.1f} min")
    print_matrix(cells, names, short)
    print("\nLeave one table out: the candidate with the best worst case on the other tables (within grid-2's cost "
          "on each), scored on the table it never saw")
    print("| held-out table | chosen on the others | its worst on the others | P(within 0.02) [95% CI] | truth "
          "bootstrapped | seed-epochs (x grid-1) | grid-2 there | vs grid-2: only grid-2 / only it (McNemar p) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in loto:
        v = r["versus_grid2"] or {}
        print(f"| {r['held_out']} | {r['chosen']} | {r['worst_on_others']:.2f} | {r['p_within']:.2f} "
              f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}] | {r['p_within_truth_boot']:.2f} | {r['seed_epochs']:.0f} "
              f"({r['of_grid1']:.2f}) | {r['grid2_p_within']:.2f} at {r['grid2_seed_epochs']:.0f} | "
              f"{v.get('only_reference')} / {v.get('only_other')} ({v.get('p', float('nan')):.2g}) |")
    worst = rp.rank_key(cells[default], short) if default else None
    print(f"\nDefault (best worst case over all {len(short)} tables within grid-2's cost): {default}"
          + (f", worst {worst[0]:.2f}, mean {worst[1]:.2f}" if worst else ""))
    out = Path(args.out or DATA / "replays-matrix.json")
    write_matrix(out, {"tables": [str(Path(t).relative_to(ROOT)) if Path(t).is_relative_to(ROOT) else t
                                  for t in tables], "replays": args.replays, "workers": args.workers,
                       "wall_s": wall, "commit": _commit(), "summaries": summaries, "leave_one_out": loto,
                       "default": default}, rows)
    figure = Path(args.figure or ROOT / "docs" / "figures" / "search-matrix.png")
    rp.figure(cells, names, short, figure)
    print(f"wrote {out}, {out.with_suffix('.parquet')} and {figure}")


def write_matrix(out: Path, head: dict, rows: list[dict]) -> None:
    """The matrix's summaries as JSON and its replays as Parquet beside it (tens of thousands of rows: as JSON
    lines they would be megabytes)."""
    import pandas as pd

    keep = ["table", "strategy", "replay", "point", "true_value", "regret", "within", "seed_epochs", "trials",
            "estimate", "seeds_of_choice"]
    runs = out.with_suffix(".parquet")
    tmp = runs.with_name(runs.name + ".tmp")
    pd.DataFrame(rows)[keep].to_parquet(tmp, index=False, compression="zstd")
    tmp.replace(runs)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({**head, "runs": runs.name}, indent=1, default=float) + "\n")
    tmp.replace(out)


def print_matrix(cells: dict, names: list[str], tables: list[str]) -> None:
    """Strategies x tables: P(within 0.02) [95% CI], truth-bootstrapped P, cost as a multiple of grid-1's, and
    McNemar against grid-2."""
    print("| strategy | " + " | ".join(tables) + " | worst | mean |")
    print("|---|" + "---|" * (len(tables) + 2))
    for n in names:
        parts = []
        for t in tables:
            c = cells[n][t]
            v = c["versus_grid2"]
            mark = "" if n == "grid-2" else (" **-**" if v["p"] < 0.05 and v["only_reference"] > v["only_other"] else
                                              " **+**" if v["p"] < 0.05 else "")
            parts.append(f"{c['p_within']:.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}] tb {c['p_within_truth_boot']:.2f}"
                         f", x{c['of_grid1']:.2f}, {v['only_reference']}/{v['only_other']}{mark}")
        ps = [cells[n][t]["p_within"] for t in tables]
        print(f"| {n} | " + " | ".join(parts) + f" | {min(ps):.2f} | {sum(ps) / len(ps):.2f} |")


def _write_runs(out: Path, head: dict, rows: list[dict]) -> None:
    """The summary readable at the top, the runs one per line (keeps the file small)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(head, indent=1, default=float)
    out.write_text(text[:-2] + ',\n "runs": [\n' + ",\n".join(
        json.dumps(r, separators=(",", ":"), default=float) for r in rows) + "\n ]\n}\n")


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

    import replays as rp

    table = read_table(args.table)
    strategy = rp.by_name(table)[args.strategy]
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


def front(args: argparse.Namespace) -> None:
    """What more GPU memory buys, on a table whose space varies the memory: each point's true F1 (its truth
    seeds' scores, paired by seed) against its estimated peak memory at `--crop-size` px and the table's batch
    (the estimator `vdes-tune plan` uses); the best point per card and each step's gain, with intervals."""
    from vdes_tune.search.curves import read_table, score_matrix
    from vdes_tune.search.memory_front import BUDGETS_GB, front_lines, memory_front
    from vdes_tune.search.space import parse_space
    from vdes_tune.training.memory import estimate, load_calibration

    table = read_table(args.table)
    space = parse_space(table.meta["space"], str(args.table))
    scores = score_matrix(table, table.truth_seeds)
    calibration = load_calibration(None)
    points = []
    for point in table.points.index:
        values = table.values_of(int(point))
        memory = estimate(space.train_config(values), args.crop_size, calibration).total_gb
        points.append({"values": values, "memory_gb": memory,
                       "scores": {str(s): float(v) for s, v in scores.loc[point].items()}})
    budgets = tuple(sorted(set(BUDGETS_GB) | set(args.extra_budgets)))
    found = memory_front(points, space.mode, budgets)
    print(f"{args.table}: {len(points)} points; memory estimated at {args.crop_size} px, batch "
          f"{space.train_config({}).batch_size} ({calibration.source} calibration); true F1 over the "
          f"{len(table.truth_seeds)} truth seeds (95% t intervals; steps paired by seed)")
    for p in sorted(points, key=lambda p: p["memory_gb"]):
        print(f"  {p['values']}: {p['memory_gb']:.2f} GB, true F1 {statistics.fmean(p['scores'].values()):.4f}")
    print("Pareto front: " + "; ".join(f"{e['values']} {e['memory_gb']:.2f} GB -> {e['mean']:.4f}"
                                      for e in found["pareto"]))
    for line in front_lines(found, "true F1"):
        print(f"  {line}")
    figure = Path(args.figure or ROOT / "docs" / "figures" / f"memory-front-{Path(args.table).stem}.png")
    _front_figure(points, found, figure)
    print(f"wrote {figure}")


def _front_figure(points: list[dict], found: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.4))
    for p in points:
        values = list(p["scores"].values())
        mean = statistics.fmean(values)
        half = 1.96 * statistics.stdev(values) / len(values) ** 0.5
        ax.errorbar(p["memory_gb"], mean, yerr=half, fmt="o", color="grey", capsize=2, alpha=0.6)
        ax.annotate("/".join(str(v) for v in p["values"].values()), (p["memory_gb"], mean), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    xs = [e["memory_gb"] for e in found["pareto"]]
    ys = [e["mean"] for e in found["pareto"]]
    ax.step(xs, ys, where="post", color="tab:blue", label="front: the best point at or under this memory")
    for step in found["budgets"]:
        ax.axvline(step["budget_gb"], ls=":", c="lightgrey")
    ax.set_xscale("log")
    ax.set_xlabel("estimated peak GPU memory (GB, log)")
    ax.set_ylabel("true validation F1 (95% interval)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def yaml_load(path: str) -> Any:
    """A YAML file's content."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


def main() -> None:
    """Command line: record, replay, matrix, live, front or truth."""
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
    rep = sub.add_parser("replay", help="replay the strategies against one table")
    rep.add_argument("--table", default=str(DEFAULT_TABLE))
    rep.add_argument("--replays", type=int, default=200)
    rep.add_argument("--strategies", default="", help="comma-separated names (default: the main strategies)")
    rep.add_argument("--engine", default="simulate", choices=["simulate", "tune"],
                     help="simulate: the searchers and schedulers without Tune's controller; tune: Tuner runs")
    rep.add_argument("--workers", type=int, default=2, help="processes (simulate) or Tuner drivers (tune)")
    rep.add_argument("--batch", type=int, default=25, help="tune: replays of a strategy per Tuner run")
    rep.add_argument("--out", default="", help="the JSON (default benchmarks/data/replays-<table>.json)")
    rep.add_argument("--figure", default="", help="the figure (default docs/figures/search-replays-<table>.png)")
    rep.add_argument("--log-dir", default=str(ROOT / "bench-work" / "logs"))
    mx = sub.add_parser("matrix", help="every strategy and candidate on every table; leave-one-table-out")
    mx.add_argument("--tables", nargs="*", default=[], help="tables (default benchmarks/data/curves-*.parquet)")
    mx.add_argument("--replays", type=int, default=200)
    mx.add_argument("--workers", type=int, default=2)
    mx.add_argument("--out", default="", help="the JSON (default benchmarks/data/replays-matrix.json)")
    mx.add_argument("--figure", default="", help="the figure (default docs/figures/search-matrix.png)")
    lv = sub.add_parser("live", help="a live search with a strategy on the table's phantom, scored by its truth")
    lv.add_argument("--table", default=str(DEFAULT_TABLE))
    lv.add_argument("--strategy", default="noise-aware")
    lv.add_argument("--concurrent", type=int, default=2)
    lv.add_argument("--work", default="", help="where the phantom is ingested (default: the recording's)")
    fr = sub.add_parser("front", help="what more GPU memory buys, on a table whose space varies the memory")
    fr.add_argument("--table", required=True)
    fr.add_argument("--crop-size", type=int, default=224, help="the crops the memory is estimated at (the paper's)")
    fr.add_argument("--extra-budgets", type=float, nargs="*", default=[], help="cards besides 8 ... 80 GB")
    fr.add_argument("--figure", default="", help="default docs/figures/memory-front-<table>.png")
    tr = sub.add_parser("truth", help="print a table's truth")
    tr.add_argument("--table", default=str(DEFAULT_TABLE))
    args = parser.parse_args()
    if args.command == "record":
        record(args)
    elif args.command == "replay":
        replay(args)
    elif args.command == "matrix":
        matrix(args)
    elif args.command == "live":
        live(args)
    elif args.command == "front":
        front(args)
    elif args.command == "truth":
        print_truth(Path(args.table))


if __name__ == "__main__":
    main()
