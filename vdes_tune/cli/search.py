"""`vdes-tune plan|search|export`: memory plan of a search space, the Ray Tune search, its export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from vdes_tune.cli.app import app
from vdes_tune.cli.options import gpu_memory_option
from vdes_tune.config import SearchOptions

SPACE_HELP = "A search-space YAML file, or the name of a shipped one (paper_classifier_lr, joint, ...)."
SET_HELP = "KEY=VALUE edit of the space: a top-level field (repeats=2), asha.grace_period=2, or train.<field>=V."


@app.command()
def plan(
    space: str = typer.Argument(..., help=SPACE_HELP),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="The card to pack on: GiB (80) or a name (h100, h200, "
                                      "a100, a100-40, l40s, l4, rtx4090, ...). Default: the GPUs here, else 24."),
    gpu_memory_gb: Optional[float] = gpu_memory_option(),
    input_size: int = typer.Option(224, "--input-size", min=16, help="Crop side the trials train on."),
    samples: Optional[int] = typer.Option(None, "--samples", min=1,
                                          help="Points to sample from a non-grid space (default num_samples)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Memory calibration JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Estimated peak GPU memory of every configuration of a space, and how its trials pack on one GPU."""
    from vdes_tune.gpus import PAPER_GPU_GB, local_packing, parse_gpu
    from vdes_tune.search.space import load_space
    from vdes_tune.training.memory import estimate, load_calibration, place

    sp = load_space(space, set_)
    cal = load_calibration(calibration)
    packing = local_packing(gpu_memory_gb, parse_gpu(gpu) if gpu else None)
    rows = []
    for point in sp.points(samples):
        cfg = sp.train_config(point)
        est = estimate(cfg, input_size, cal)
        where = place(est.total, packing.budget_gb, packing.card_gb)
        # What the same configuration packed as a share of the paper's card would allow (what a fixed
        # 24 GiB budget gave on any card).
        old = place(est.total, PAPER_GPU_GB) if packing.card_gb != PAPER_GPU_GB else where
        rows.append({"point": point, "arch": cfg.arch, "batch_size": cfg.batch_size,
                     "estimate_gb": round(est.total_gb, 3),
                     "breakdown_gb": {k: round(v, 3) for k, v in est.breakdown_gb().items()},
                     "gpu_fraction": where.fraction, "per_gpu": _per_gpu(where.fraction),
                     "per_gpu_as_24gb_shares": _per_gpu(old.fraction) if old.feasible and where.feasible else 0,
                     "feasible": where.feasible, "reason": where.reason})
    feasible = [r for r in rows if r["feasible"]]
    summary = {"space": sp.name, "gpu_gb": packing.card_gb, "gpu_memory_gb": packing.budget_gb,
               "input_size": input_size, "calibration": cal.source, "configurations": len(rows),
               "feasible": len(feasible), "median_per_gpu": _median([r["per_gpu"] for r in feasible]),
               "median_per_gpu_as_24gb_shares": _median([r["per_gpu_as_24gb_shares"] for r in feasible])}
    if as_json:
        typer.echo(json.dumps({**summary, "rows": rows}, indent=2))
        return
    names = list(sp.searched)
    header = "  ".join(f"{n.split('.')[-1]:>14}" for n in names)
    cap = f", configurations up to {packing.budget_gb:g} GiB" if packing.budget_gb < packing.card_gb else ""
    typer.echo(f"{sp.name}: {len(rows)} configuration(s) at batch {rows[0]['batch_size'] if rows else '?'}, "
               f"{input_size} px, on a {packing.card_gb:g} GiB GPU{cap} (calibration: {cal.source.split(':')[0]})")
    typer.echo(f"{header}  {'estimate GiB':>12}  {'fraction':>8}  {'per GPU':>7}  feasible")
    for r in rows:
        values = "  ".join(f"{_show(r['point'][n]):>14}" for n in names)
        typer.echo(f"{values}  {r['estimate_gb']:>12.2f}  {r['gpu_fraction']:>8.2f}  {r['per_gpu']:>7}  "
                   f"{'yes' if r['feasible'] else 'NO: ' + r['reason']}")
    typer.echo(f"{len(feasible)} of {len(rows)} fit; {len(rows) - len(feasible)} would not be launched")
    if feasible:
        line = f"trials at once on one {packing.card_gb:g} GiB GPU: median {summary['median_per_gpu']:g}"
        if packing.card_gb != PAPER_GPU_GB:
            line += f" (sized as shares of a {PAPER_GPU_GB:g} GiB card: {summary['median_per_gpu_as_24gb_shares']:g})"
        typer.echo(line + " (by memory; CPUs per trial and the card's compute also bound what runs at once)")


def _per_gpu(fraction: float) -> int:
    """Trials of this fraction that one card holds at once."""
    return int(1 / fraction + 1e-9) if fraction else 0


def _median(values: list[int]) -> float:
    import statistics

    return float(statistics.median(values)) if values else 0.0


@app.command()
def gpus(
    ray_resources: bool = typer.Option(False, "--ray-resources", help="Print only the JSON for `ray start "
                                       "--resources` (empty {} without a GPU)."),
) -> None:
    """This machine's GPUs and the Ray resource that lets trials pack by their memory on a cluster node."""
    from vdes_tune.gpus import describe_local, local_cards_mib, node_resources

    if ray_resources:
        typer.echo(json.dumps(node_resources(local_cards_mib())))
        return
    typer.echo(describe_local())


def _show(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command()
def search(
    space: str = typer.Argument(..., help=SPACE_HELP),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) with dataset/shards."),
    name: Optional[str] = typer.Option(None, "--name", help="Experiment name (default: the space's name)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Experiment storage: a folder or a URI "
                                          "(default <work>/search)."),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", min=1, help="Trials at once at most."),
    num_samples: Optional[int] = typer.Option(None, "--num-samples", min=1, help="Override num_samples (not grid)."),
    gpu_memory_gb: Optional[float] = gpu_memory_option(),
    cpus_per_trial: float = typer.Option(SearchOptions.cpus_per_trial, "--cpus-per-trial", min=0.1,
                                         help="CPUs each trial reserves."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto, host:port or ray://..."),
    mlflow_uri: Optional[str] = typer.Option(None, "--mlflow-uri", help="Also log trials to this MLflow tracking URI."),
    max_failures: int = typer.Option(SearchOptions.max_failures, "--max-failures", min=0,
                                     help="Retries of a failed trial from its checkpoint."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Memory calibration JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Run a Ray Tune search of a space (running the same command again resumes it); print a leaderboard."""
    from vdes_tune.search.export import leaderboard, load_experiment
    from vdes_tune.search.runner import print_leaderboard
    from vdes_tune.stages import Context, run_stage
    from vdes_tune.workspace import Workspace

    body = {"space": space, "name": name, "storage": storage, "max_concurrent": max_concurrent,
            "num_samples": num_samples, "gpu_memory_gb": gpu_memory_gb, "cpus_per_trial": cpus_per_trial,
            "mlflow_uri": mlflow_uri, "max_failures": max_failures, "set": list(set_),
            "calibration": str(calibration) if calibration else None}
    summary = run_stage("search", body, Context(Workspace.at(work), address=address))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    board = leaderboard(load_experiment(summary["path"]))
    state = " (already finished: nothing to run)" if summary["skipped"] else ""
    typer.echo(f"{summary['experiment']}: {summary['finished']}/{summary['trials']} finished, "
               f"{summary['infeasible']} infeasible, {summary['errored']} errored; stored in {summary['path']}{state}")
    print_leaderboard(board, summary["metric"])
    typer.echo(f"next: vdes-tune export {summary['experiment']} --work {work}")


@app.command("export")
def export_cmd(
    experiment: str = typer.Argument(..., help="Experiment name (the search's --name or its space's name)."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) the search ran in."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Experiment storage, if not <work>/search."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write best/<experiment>.yaml (best config per architecture) and best/<experiment>-leaderboard.csv."""
    from vdes_tune.stages import Context, run_stage
    from vdes_tune.workspace import Workspace

    out = run_stage("export", {"experiment": experiment, "storage": storage or ""}, Context(Workspace.at(work)))
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"{out['finished']}/{out['total']} trials finished ({out['infeasible']} infeasible, "
               f"{out['errored']} errored); best configuration for architecture(s) "
               f"{', '.join(f'#{a}' for a in out['architectures'])}")
    if out["memory_front"]:
        typer.echo("What more GPU memory buys (the best point that fits each card, and the step up's gain):")
        for line in out["memory_front"]:
            typer.echo(f"  {line}")
    typer.echo(f"wrote {out['best']}\nwrote {out['leaderboard']}")
