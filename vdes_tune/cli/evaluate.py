"""`vdes-tune evaluate|report`: the final repeated evaluation of the architectures, and its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from vdes_tune.cli.app import app
from vdes_tune.cli.options import gpu_memory_option
from vdes_tune.cli.status import verify_option
from vdes_tune.config import EvalOptions
from vdes_tune.errors import BadInputError


def parse_archs(text: str) -> tuple[int, ...]:
    """'1,2,3' or '1-6' -> (1, 2, 3)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi or lo) + 1))
    except ValueError as exc:
        raise BadInputError(f"--archs {text!r}: expected numbers like 1,2,3 or 1-6") from exc
    return tuple(out)


def print_table3(results_path: str) -> None:
    """Table 3 (mean (std) of accuracy and F1, val and test) of a results.parquet, then the answer: its
    sentence and, per virtual DES, the verdicts."""
    import pandas as pd

    from vdes_tune.evaluation import stats
    from vdes_tune.evaluation.answer import answer_of
    from vdes_tune.report.study import table3_display

    results = pd.read_parquet(results_path)
    typer.echo(table3_display(stats.table3(results)).to_string(index=False))
    print_answer(answer_of(Path(results_path).parent))


def print_answer(answer: dict) -> None:
    """The answer sentence and the verdict table, for the terminal."""
    from vdes_tune.report.study import verdict_table

    typer.echo("\nAnswer: " + answer["sentence"])
    verdicts = verdict_table(answer)
    if len(verdicts):
        typer.echo("\n" + verdicts.to_string(index=False))


@app.command()
def evaluate(
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) with dataset/ (and best/)."),
    configs: List[str] = typer.Option([], "--configs", help="best/<experiment>.yaml from `vdes-tune export` (a "
                                      "path, one under --work, or an experiment name); repeat it to combine "
                                      "searches (a later file wins)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Repeats per architecture (default 30)."),
    archs: str = typer.Option("1,2,3,4,5,6", "--archs", help="Architectures, e.g. 1,2,3 or 1-7 (#7: Pix2Pix, "
                              "not in the paper)."),
    run: str = typer.Option("main", "--run", help="Name of the evaluation: results go to eval/<run>/."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base seed of the repeats (default 0)."),
    config: Optional[Path] = typer.Option(None, "--config", help="An evaluate config YAML (the pipeline's "
                                          "`evaluate:` mapping); flags override it."),
    set_: List[str] = typer.Option([], "--set", help="KEY=VALUE edit, e.g. train.epochs=2 or "
                                           "generators.unet.epochs=5."),
    actors: int = typer.Option(EvalOptions.actors, "--actors", min=0, help="Actors in the pool (0: as many as fit)."),
    cpus_per_actor: float = typer.Option(EvalOptions.cpus_per_actor, "--cpus-per-actor", min=0.1,
                                         help="CPUs each actor (and each generator's pre-training) reserves."),
    gpu_memory_gb: Optional[float] = gpu_memory_option(),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Memory calibration JSON."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster: auto, host:port or ray://..."),
    force: bool = typer.Option(False, "--force", help="Discard finished jobs of a differently configured run."),
    pretrain_only: bool = typer.Option(False, "--pretrain-only", help="Only the pretrain stage: train and "
                                       "synthesise the generators the evaluation reads (#4's U-Net/PT), then stop."),
    verify: bool = verify_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train every architecture `--repeats` times on a pool of Ray actors; re-running resumes. The pretrain
    stage runs first: it makes the generators the evaluation reads that no `vdes` entry names (#4's U-Net/PT
    with the searched shape), each once."""
    from vdes_tune.stages import STAGES, Context
    from vdes_tune.workspace import Workspace

    body = evaluate_body(config, configs, repeats, archs, seed, set_)
    body.update({"run": run, "actors": actors, "cpus_per_actor": cpus_per_actor, "gpu_memory_gb": gpu_memory_gb,
                 "calibration": str(calibration) if calibration else None})
    log = (lambda m: typer.echo(m, err=True))
    settings = STAGES.get("evaluate").parse(body)
    ctx = Context(Workspace.at(work), address=address, verify=verify, force=force, log=log)
    made = STAGES.get("pretrain").run(settings, ctx)  # returns at once when no generator needs making
    if pretrain_only:
        typer.echo(json.dumps(made, indent=2) if as_json else "next: the same command without --pretrain-only")
        return
    summary = STAGES.get("evaluate").run(settings, ctx)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        if summary["rows"]:
            print_table3(summary["results"])
        typer.echo(f"{summary['rows']}/{summary['jobs']} jobs in {summary['results']}")
        typer.echo(f"next: vdes-tune report --work {work} --run {run}")
    if summary["failed"]:
        for job, why in summary["failed"].items():
            typer.secho(f"failed: {job}: {why}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)


def evaluate_body(config: Optional[Path], configs: List[str], repeats: Optional[int], archs: str,
                  seed: Optional[int], set_: List[str]) -> dict:
    """The evaluate stage's mapping from an optional YAML, then the flags, then --set edits."""
    from vdes_tune.config import parse_set, read_yaml_mapping

    data: dict = dict(read_yaml_mapping(config)) if config else {}
    if configs:
        data["configs"] = [str(p) for p in configs]
    if repeats is not None:
        data["repeats"] = repeats
    if archs != "1,2,3,4,5,6" or "archs" not in data:
        data["archs"] = list(parse_archs(archs))
    if seed is not None:
        data["seed"] = seed
    for key, value in parse_set(set_).items():
        *path, last = key.split(".")
        node = data
        for part in path:  # generators.unet.epochs=5 edits data["generators"]["unet"]["epochs"]
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[last] = value
    return data


@app.command("report")
def report_cmd(
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) with eval/<run>/."),
    run: str = typer.Option("main", "--run", help="The evaluation to report."),
    search: Optional[str] = typer.Option(None, "--search", help="Report this search experiment instead (its "
                                         "history, parallel coordinates and parameter importance), into "
                                         "report/search-<experiment>/."),
    storage: str = typer.Option("", "--storage", help="With --search: Tune storage (default <work>/search)."),
    margin: Optional[float] = typer.Option(None, "--margin", min=0.0, max=0.99, help="Non-inferiority margin on "
                                           "test F1 (0.02 = 2 points; default: the evaluation's analysis.margin)."),
    as_json: bool = typer.Option(False, "--json", help="Print paths, Table 3 and the answer as JSON."),
) -> None:
    """Write report/<run>/: the answer first, figures, then tables (CSV, JSON), as report.md and report.html."""
    from vdes_tune.stages import Context, report
    from vdes_tune.workspace import Workspace

    settings = report.parse({"run": run, "margin": margin, "search": search or "", "storage": storage})
    found = report.build(settings, Context(Workspace.at(work)))
    if search:
        if as_json:
            typer.echo(json.dumps(found, indent=2, default=str))
            return
        note = found["importance_note"] or ", ".join(f"{r['parameter']} {r['importance']:.2f}"
                                                     for r in found["importance"])
        typer.echo(f"{found['trials']} trials ({found['complete_trials']} complete); importance: {note}")
        typer.echo(f"wrote {found['report_html']}\nwrote {found['report_md']}")
        return
    if as_json:
        tables = json.loads(Path(found["report_md"]).with_name("tables").joinpath("tables.json").read_text())
        typer.echo(json.dumps({k: v for k, v in found.items() if k not in ("tables", "answer_detail")} |
                              {"table3": tables["table3"], "verdicts": tables["answer"]}, indent=2))
        return
    from vdes_tune.report.study import table3_display

    typer.echo(table3_display(found["tables"]["table3"]).to_string(index=False))
    print_answer(found["answer_detail"])
    typer.echo(f"\nwrote {found['report_html']}\nwrote {found['report_md']}")


@app.command("plan-study")
def plan_study_cmd(
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) with eval/<run>/."),
    run: str = typer.Option("main", "--run", help="The finished evaluation to plan from (the pilot)."),
    margin: Optional[float] = typer.Option(None, "--margin", min=0.0, max=0.99, help="Non-inferiority margin on "
                                           "test F1 (default: the evaluation's analysis.margin)."),
    power: float = typer.Option(0.8, "--power", min=0.5, max=0.99, help="Wanted chance of a decisive verdict."),
    repeats: int = typer.Option(30, "--repeats", min=2, help="Repeats of the planned study (the paper's 30)."),
    patients: int = typer.Option(326, "--dataset-patients", min=2, help="Patients of the dataset to plan for "
                                 "(the CDD-CESM's 326); its test split is --test-fraction of them."),
    test_fraction: float = typer.Option(0.15, "--test-fraction", min=0.01, max=0.9),
    metric: str = typer.Option("f1", "--metric", help="The metric to plan in words: f1, roc_auc, sensitivity or "
                               "specificity (--json has them all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """How many test patients and repeats would decide each comparison of a finished evaluation."""
    from vdes_tune.config import analysis_config
    from vdes_tune.evaluation import paired, power as planner
    from vdes_tune.evaluation.answer import answer_of
    from vdes_tune.workspace import Workspace

    if metric not in paired.METRICS:
        raise typer.BadParameter(f"{metric!r} is not one of {', '.join(paired.METRICS)}", param_hint="--metric")
    workspace = Workspace.at(work)
    eval_dir = workspace.pull(workspace.evaluation(run))
    plan_path = eval_dir / "plan.json"
    if not (eval_dir / "results.parquet").is_file() or not plan_path.is_file():
        raise BadInputError(f"{eval_dir}: no evaluation results (run `vdes-tune evaluate --run {run}` first)")
    cfg = analysis_config(json.loads(plan_path.read_text())["config"].get("analysis"), margin=margin)
    answer = answer_of(eval_dir, cfg)
    if answer.get("method") != "repeats and patients":
        raise BadInputError(f"{eval_dir}: planning needs per-crop predictions (predictions.parquet), which this "
                            f"run lacks")
    rows = planner.study_plan(answer, power, repeats, patients, test_fraction)
    if as_json:
        typer.echo(json.dumps({"run": run, "power": power, "repeats": repeats, "dataset_patients": patients,
                               "test_fraction": test_fraction, "comparisons": rows}, indent=2, default=float))
        return
    names, label = answer["names"], paired.METRIC_NAMES[metric]
    typer.echo(f"Pilot: {answer['patients']} test patients, {answer['repeats']} repeats. Test patients for {power:.0%}"
               f" power (a decisive verdict), the pilot's {label} differences taken as the truth:")
    for r in (r for r in rows if r["metric"] == metric):
        def need(n: Optional[int]) -> str:
            if n is None:
                return "none suffices"
            return f"{n}" + (" (the pilot's; fewer are not projected)" if n == r["patients"] else "")

        bound = f"the -{100 * r['margin']:g}-point margin" if r["kind"] == "real" else "0"
        alone = "more repeats alone could" if r["repeats_alone_enough"] else "more repeats alone cannot"
        best = r["cheapest"]
        cheap = (f"cheapest there: {best['repeats']} repeats on {best['patients']} test patients" if best else
                 f"{100 * r['diff']:+.1f} points is too close to {bound} to decide with {power:.0%} power at any "
                 f"size that dataset can give (its {r['horizon_patients']} test patients, up to "
                 f"{planner.REPEAT_LADDER[-1]} repeats)")
        typer.echo(f"- {names.get(str(r['arch']), r['arch'])} vs {names.get(str(r['reference']))}: "
                   f"{100 * r['diff']:+.1f} points against {bound}, +-{100 * r['half_width']:.1f} now "
                   f"(decisive {r['decisive_now']:.0%}). At {r['repeats']} repeats: {need(r['patients_needed'])}; "
                   f"at {repeats}: {need(r[f'patients_needed_at_{repeats}'])}; {alone}. A {patients}-patient "
                   f"dataset ({r['horizon_patients']} test patients, {repeats} repeats) decides it "
                   f"{r[f'decisive_at_horizon_{repeats}']:.0%} of the time ({r[f'assurance_at_horizon_{repeats}']:.0%} "
                   f"averaged over the pilot's uncertainty about the difference); {cheap}.")
    if answer["patients"] < planner.FIRM_PILOT_PATIENTS:
        typer.echo(f"Caution: the patient part is estimated from {answer['patients']} test patients. On the phantom, "
                   f"pilots of 13 test patients projected the interval of a 79-patient study within 30% about half "
                   f"the time, pilots of 26 in 82-90% and of 40 in 91-96% (docs/benchmarks.md): read these numbers "
                   f"as a range, and plan from a pilot with at least {planner.FIRM_PILOT_PATIENTS} test patients.")
