"""`vdes-tune plan|search|export`: memory plan of a search space, the Ray Tune search, its export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from vdes_tune.cli import app

SPACE_HELP = "A search-space YAML file, or the name of a shipped one (paper_classifier_lr, joint, ...)."
SET_HELP = "KEY=VALUE edit of the space: a top-level field (repeats=2), asha.grace_period=2, or train.<field>=V."


@app.command()
def plan(
    space: str = typer.Argument(..., help=SPACE_HELP),
    gpu_memory_gb: float = typer.Option(24.0, "--gpu-memory-gb", help="Memory of one GPU to plan for (GiB)."),
    input_size: int = typer.Option(224, "--input-size", min=16, help="Crop side the trials train on."),
    samples: Optional[int] = typer.Option(None, "--samples", min=1,
                                          help="Points to sample from a non-grid space (default num_samples)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Memory calibration JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Estimated peak GPU memory, GPU fraction and feasibility of every configuration of a space."""
    from vdes_tune.search.space import load_space
    from vdes_tune.training.memory import estimate, load_calibration, place

    sp = load_space(space, set_)
    cal = load_calibration(calibration)
    rows = []
    for point in sp.points(samples):
        cfg = sp.train_config(point)
        est = estimate(cfg, input_size, cal)
        where = place(est.total, gpu_memory_gb)
        rows.append({"point": point, "arch": cfg.arch, "batch_size": cfg.batch_size,
                     "estimate_gb": round(est.total_gb, 3),
                     "breakdown_gb": {k: round(v, 3) for k, v in est.breakdown_gb().items()},
                     "gpu_fraction": where.fraction, "feasible": where.feasible, "reason": where.reason})
    feasible = sum(r["feasible"] for r in rows)
    if as_json:
        typer.echo(json.dumps({"space": sp.name, "gpu_memory_gb": gpu_memory_gb, "input_size": input_size,
                               "calibration": cal.source, "configurations": len(rows), "feasible": feasible,
                               "rows": rows}, indent=2))
        return
    names = list(sp.searched)
    header = "  ".join(f"{n.split('.')[-1]:>14}" for n in names)
    typer.echo(f"{sp.name}: {len(rows)} configuration(s) at batch {rows[0]['batch_size'] if rows else '?'}, "
               f"{input_size} px, budget {gpu_memory_gb:g} GiB per GPU (calibration: {cal.source.split(':')[0]})")
    typer.echo(f"{header}  {'estimate GiB':>12}  {'fraction':>8}  feasible")
    for r in rows:
        values = "  ".join(f"{_show(r['point'][n]):>14}" for n in names)
        typer.echo(f"{values}  {r['estimate_gb']:>12.2f}  {r['gpu_fraction']:>8.3f}  "
                   f"{'yes' if r['feasible'] else 'NO: ' + r['reason']}")
    typer.echo(f"{feasible} of {len(rows)} fit; {len(rows) - feasible} would not be launched")


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
    gpu_memory_gb: float = typer.Option(24.0, "--gpu-memory-gb", help="Memory of one GPU to plan for (GiB)."),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", min=0.1, help="CPUs each trial reserves."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto, host:port or ray://..."),
    mlflow_uri: Optional[str] = typer.Option(None, "--mlflow-uri", help="Also log trials to this MLflow tracking URI."),
    max_failures: int = typer.Option(2, "--max-failures", min=0, help="Retries of a failed trial from its checkpoint."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Memory calibration JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Run a Ray Tune search of a space (running the same command again resumes it); print a leaderboard."""
    from vdes_tune.search.export import leaderboard, load_experiment
    from vdes_tune.search.runner import SearchOptions, print_leaderboard, run_search
    from vdes_tune.search.space import load_space, with_samples

    sp = with_samples(load_space(space, set_), num_samples)
    opts = SearchOptions(name=name or "", storage=storage or "", max_concurrent=max_concurrent,
                         gpu_memory_gb=gpu_memory_gb, cpus_per_trial=cpus_per_trial, address=address,
                         mlflow_uri=mlflow_uri or "", max_failures=max_failures,
                         calibration=str(calibration) if calibration else "", overrides=tuple(set_))
    summary = run_search(sp, work, opts)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    board = leaderboard(load_experiment(summary["path"]))
    typer.echo(f"{summary['experiment']}: {summary['finished']}/{summary['trials']} finished, "
               f"{summary['infeasible']} infeasible, {summary['errored']} errored; stored in {summary['path']}")
    print_leaderboard(board, sp.metric)
    typer.echo(f"next: vdes-tune export {summary['experiment']} --work {work}")


@app.command("export")
def export_cmd(
    experiment: str = typer.Argument(..., help="Experiment name (the search's --name or its space's name)."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) the search ran in."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Experiment storage, if not <work>/search."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write best/<experiment>.yaml (best config per architecture) and best/<experiment>-leaderboard.csv."""
    from vdes_tune.search.export import export

    out = export(experiment, work, storage or "")
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"{out['finished']}/{out['total']} trials finished ({out['infeasible']} infeasible, "
               f"{out['errored']} errored); best configuration for architecture(s) "
               f"{', '.join(f'#{a}' for a in out['architectures'])}")
    typer.echo(f"wrote {out['best']}\nwrote {out['leaderboard']}")
