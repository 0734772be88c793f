"""A search, visualised from its Tune results: an Optuna study rebuilt from the trials (no search is re-run),
its optimisation history, parallel coordinates and parameter importances (Optuna's own evaluators and plots),
how sure its choice is (seeds, spread, paired evidence against the runner-up), the seeds each point got and
what a race decided, as figures and tables for the evaluation report and as `vdes-tune report --search`.
A figure that too few trials would make meaningless is left out, with the reason."""

from __future__ import annotations

import datetime as dt
import html
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from vdes_tune import __version__
from vdes_tune.errors import BadInputError
from vdes_tune.search.export import Experiment, best_per_architecture, front_of, leaderboard, load_experiment
from vdes_tune.search.memory_front import front_lines
from vdes_tune.search.space import Domain
from vdes_tune.workspace import SCHEMA_VERSION, Workspace, atomic_dir, write_json

IMPORTANCE_SEED = 0
# Below these, Optuna still draws the figures, but they say nothing: fANOVA over a handful of points (or over a
# single parameter, whose importance is 1 by definition), and parallel coordinates of two or three lines.
MIN_TRIALS_PER_PARAMETER = 4
MIN_TRIALS_PARALLEL = 4


def _distribution(domain: Domain) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if domain.kind == "choice":
        return CategoricalDistribution(list(domain.values))
    if domain.kind == "int":
        return IntDistribution(int(domain.low), int(domain.high), step=domain.step, log=domain.log)
    return FloatDistribution(domain.low, domain.high, log=domain.kind == "loguniform")


def _order(trial_id: str) -> tuple[int, str]:
    """Tune numbers its trials `<run>_00007`: creation order."""
    tail = trial_id.rsplit("_", 1)[-1]
    return (int(tail) if tail.isdigit() else 1 << 30, trial_id)


def rebuild_study(exp: Experiment) -> Any:
    """An in-memory Optuna study holding every trial of the experiment: finished feasible trials that ran all
    epochs are COMPLETE, trials stopped early by the scheduler are PRUNED at the epoch they reached, the rest FAIL."""
    import optuna
    from optuna.trial import TrialState, create_trial

    space = exp.space
    distributions = {k: _distribution(d) for k, d in space.searched.items()
                     if not (d.kind == "choice" and len(d.values) < 2)}
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory" is not news here
    try:
        study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize",
                                    study_name=exp.sidecar.get("experiment", space.name))
    finally:
        optuna.logging.set_verbosity(before)
    for t in sorted(exp.trials, key=lambda t: _order(t.trial_id)):
        result = t.last_result or {}
        value = result.get(space.metric)
        params = {k: t.config[k] for k in distributions if k in t.config}
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        epochs = int(result.get("epoch", 0) or 0)
        if t.status == "TERMINATED" and int(result.get("feasible", 1)) == 1 and finite and epochs >= space.epochs:
            state, kwargs = TrialState.COMPLETE, {"value": float(value)}
        elif finite and int(result.get("feasible", 1)) == 1:
            state, kwargs = TrialState.PRUNED, {"intermediate_values": {epochs: float(value)}}
        else:
            state, kwargs = TrialState.FAIL, {}
        study.add_trial(create_trial(state=state, params=params, distributions={k: distributions[k] for k in params},
                                     user_attrs={"trial_id": t.trial_id, "status": t.status}, **kwargs))
    return study


def _searched(study: Any) -> list[str]:
    """The parameters that vary across the study's trials."""
    values: dict[str, set] = {}
    for t in study.trials:
        for k, v in t.params.items():
            values.setdefault(k, set()).add(v)
    return [k for k, v in values.items() if len(v) > 1]


def importances(study: Any) -> tuple[pd.DataFrame, str]:
    """fANOVA importance of each searched parameter (Optuna's evaluator, seeded), or an empty table and why."""
    import optuna
    from optuna.trial import TrialState

    empty = pd.DataFrame(columns=["parameter", "importance"])
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    params = _searched(study)
    if len(params) < 2:
        return empty, (f"{len(params)} parameter(s) varied: the importance of a single parameter is 1 by definition"
                       if params else "no parameter varied")
    need = MIN_TRIALS_PER_PARAMETER * len(params)
    if len(complete) < need:
        return empty, (f"{len(complete)} complete trial(s) for {len(params)} parameters: too few for a meaningful "
                       f"importance (need {need})")
    if len({t.value for t in complete}) < 2:
        return pd.DataFrame(columns=["parameter", "importance"]), "every complete trial has the same value"
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED))
    except (RuntimeError, ValueError) as exc:
        return pd.DataFrame(columns=["parameter", "importance"]), str(exc)
    return pd.DataFrame({"parameter": list(found), "importance": list(found.values())}), ""


def figure_notes(study: Any) -> dict[str, str]:
    """Why a figure is left out (by file name): too few trials or parameters for it to mean anything."""
    from optuna.trial import TrialState

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    notes = {}
    if complete < MIN_TRIALS_PARALLEL or len(_searched(study)) < 2:
        notes["search_parallel.png"] = (f"no parallel-coordinates plot: {complete} complete trial(s) over "
                                        f"{len(_searched(study))} varied parameter(s) (need {MIN_TRIALS_PARALLEL} "
                                        f"trials and 2 parameters)")
    why = importances(study)[1]
    if why:
        notes["search_importance.png"] = f"no importance plot: {why}"
    return notes


def figures(study: Any) -> dict[str, bytes]:
    """Optimisation history, parallel coordinates and parameter importances as PNGs (Optuna's matplotlib
    plots); a plot that too few trials make meaningless, or that Optuna cannot draw, is left out."""
    import optuna
    import optuna.visualization.matplotlib as vm

    from vdes_tune.report.figures import _png, _pyplot

    _pyplot()
    out = {}
    plots = {"search_history.png": lambda: vm.plot_optimization_history(study),
             "search_parallel.png": lambda: vm.plot_parallel_coordinate(study),
             "search_importance.png": lambda: vm.plot_param_importances(
                 study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED))}
    skipped = figure_notes(study)
    for name, draw in plots.items():
        if name in skipped:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            try:
                ax = draw()
            except (RuntimeError, ValueError, ZeroDivisionError):
                continue
        axis = ax.flat[0] if hasattr(ax, "flat") else ax
        fig = axis.get_figure()
        fig.set_size_inches(8, 4.2)
        out[name] = _png(fig)
    return out


def summary(exp: Experiment) -> dict[str, Any]:
    """Study, importances, figures and the trial table of one experiment."""
    from optuna.trial import TrialState

    study = rebuild_study(exp)
    table, why = importances(study)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    board = leaderboard(exp)
    return {"experiment": exp.sidecar.get("experiment", exp.space.name), "path": exp.path, "metric": exp.space.metric,
            "mode": exp.space.mode, "trials": len(study.trials), "states": states,
            "complete": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
            "importance": table, "importance_note": why, "figures": figures(study), "figure_notes": figure_notes(study),
            "leaderboard": board, "strategy": exp.space.strategy.describe(exp.space.epochs),
            "cost_seed_epochs": int(board["seed_epochs"].sum()) if len(board) else 0,
            "choice": choices(exp, board), "seeds": seeds_table(exp, board), "memory_front": _front(exp, board)}


def _front(exp: Experiment, board: pd.DataFrame) -> list[str]:
    front = front_of(exp, board)
    return front_lines(front, exp.space.metric) if front else []


def choices(exp: Experiment, board: pd.DataFrame) -> list[str]:
    """One sentence per architecture: the chosen point, its objective with its spread and seeds, and how it
    compares with the runner-up over their shared seeds."""
    if board.empty:
        return []
    metric, out = exp.space.metric, []
    for arch, entry in best_per_architecture(exp, board).items():
        obj, versus = entry["objective"], entry["versus_runner_up"]
        point = ", ".join(f"{k.split('.')[-1]} {_show(v)}" for k, v in entry["searched"].items())
        line = (f"#{arch}: {point or 'the fixed configuration'}: {metric} {obj[metric]:.4f} (std "
                f"{obj[metric + '_std']:.4f} over {obj['repeats']} seed(s), seeds {obj['seeds']})")
        if versus.get("runner_up") and versus.get("shared_seeds"):
            rival = ", ".join(f"{k.split('.')[-1]} {_show(v)}" for k, v in versus["runner_up"].items())
            low, high = versus["diff_ci95"]
            interval = f"95% CI {low:+.4f} to {high:+.4f}, " if low is not None else ""
            line += (f"; against the runner-up ({rival}): {versus['mean_diff']:+.4f} over {versus['shared_seeds']} "
                     f"shared seed(s) ({interval}one-sided Wilcoxon p = {versus['p_not_better']:.3g}): "
                     f"{versus['verdict']}")
        elif versus.get("runner_up"):
            rival = ", ".join(f"{k.split('.')[-1]} {_show(v)}" for k, v in versus["runner_up"].items())
            line += f"; runner-up ({rival}): {versus['verdict']}"
        else:
            line += f"; {versus['verdict']}"
        out.append(line)
    for event in (exp.race or {}).get("events", []):
        if event.get("action") == "rung stood down":
            out.append(f"The epoch rung at epoch {event['epoch']} stood down: {event['why']}; the points it had "
                       f"stopped were trained again from the start.")
    return out


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def seeds_table(exp: Experiment, board: pd.DataFrame) -> pd.DataFrame:
    """The seeds each point got, its objective over them, its cost, and what a race decided and why."""
    if board.empty:
        return board
    metric = exp.space.metric
    cols = ["rank", "trial_id", *[c for c in board.columns if c.startswith("train.") or c == "arch"], "seeds",
            metric, f"{metric}_std", "seed_epochs", "race", "race_why"]
    shown = board[[c for c in dict.fromkeys(cols) if c in board.columns]]
    return shown if exp.race is not None else shown.drop(columns=["race", "race_why"], errors="ignore")


def experiment_of_best_file(path: str | Path) -> str | None:
    """Where the search behind a best-configuration file lives (its provenance), if it says."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    return ((doc.get("provenance") or {}).get("storage")) or None


def build(work: str | Path, experiment: str, storage: str = "") -> dict[str, Any]:
    """Write report/search-<experiment>/: report.html, report.md, figures and tables of one search."""
    from vdes_tune.report.page import html_page, markdown_table
    from vdes_tune.search.storage import experiment_path, is_uri

    workspace = Workspace.at(work)
    storage = storage or workspace.location(workspace.root / "search")
    if not is_uri(storage):
        storage = str(Path(storage).expanduser().resolve())
    path = experiment_path(storage, experiment)
    if not is_uri(path) and not Path(path).is_dir():
        raise BadInputError(f"{path}: no such search experiment (see `vdes-tune search --name`)")
    found = summary(load_experiment(path))
    final = workspace.report(f"search-{experiment}")
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    head = (f"Search `{found['experiment']}` at {path}: {found['trials']} trials "
            f"({', '.join(f'{v} {k.lower()}' for k, v in sorted(found['states'].items()))}); objective "
            f"{found['metric']} ({found['mode']}); strategy {found['strategy']}; cost "
            f"{found['cost_seed_epochs']} seed-epochs; generated {created}.")
    note = (f"Parameter importance: fANOVA (Optuna, seed {IMPORTANCE_SEED}) over the {found['complete']} complete "
            f"trials." if not found["importance_note"] else f"No parameter importance: {found['importance_note']}.")
    with atomic_dir(final) as tmp:
        (tmp / "figures").mkdir()
        (tmp / "tables").mkdir()
        for name, data in found["figures"].items():
            (tmp / "figures" / name).write_bytes(data)
        found["importance"].to_csv(tmp / "tables" / "importance.csv", index=False)
        found["leaderboard"].to_csv(tmp / "tables" / "trials.csv", index=False)
        found["seeds"].to_csv(tmp / "tables" / "seeds.csv", index=False)
        md = [f"# vdes-tune search report: {found['experiment']}\n", head + "\n", "## How sure the choice is\n",
              *[f"- {line}" for line in found["choice"]], "", note + "\n"]
        md += [f"- {why}" for why in found["figure_notes"].values()] + [""]
        if found["memory_front"]:
            md += ["## What more GPU memory buys\n", FRONT_NOTE + "\n", *[f"- {line}" for line in found["memory_front"]],
                   ""]
        md += [f"![{n}](figures/{n})\n" for n in found["figures"]]
        md += ["## Seeds per point\n", SEEDS_NOTE + "\n", markdown_table(found["seeds"]) if len(found["seeds"]) else
               "(none)\n"]
        md += ["## Parameter importance\n", markdown_table(found["importance"]) if len(found["importance"]) else
               "(none)\n", "All trials: tables/trials.csv.\n"]
        (tmp / "report.md").write_text("\n".join(md))
        body = [f"<p>{html.escape(head)}</p><p>{html.escape(note)}</p>", search_html(found)]
        (tmp / "report.html").write_text(html_page(f"vdes-tune search report: {found['experiment']}", "".join(body)))
        write_json(tmp / "manifest.json", {"schema_version": SCHEMA_VERSION, "stage": "report.search",
                                           "vdes_tune_version": __version__, "experiment": found["experiment"],
                                           "storage": path, "trials": found["trials"], "complete": True})
    workspace.push(final)
    return {"output": workspace.location(final), "report_html": str(final / "report.html"),
            "report_md": str(final / "report.md"), "trials": found["trials"], "complete_trials": found["complete"],
            "importance": found["importance"].to_dict("records"), "importance_note": found["importance_note"]}


SEARCH_TITLES = {"search_history.png": "Optimisation history", "search_parallel.png": "Parallel coordinates",
                 "search_importance.png": "Parameter importance (fANOVA)"}


FRONT_NOTE = ("The best point that fits each card (by its estimated peak memory at the crops the search trained "
              "on, as `vdes-tune plan` sizes it), its objective with a 95% t interval over its seeds, and what the "
              "step up from the card before buys: the paired difference over shared seeds, with its interval.")


SEEDS_NOTE = ("Each point's seeds, its objective over them (mean of each seed's best-validation-epoch value, "
              "std across seeds) and its cost in seed-epochs; with a race, what it decided and on what evidence.")


def search_html(found: dict[str, Any]) -> str:
    """How sure the choice is, the figures of one search (inline PNGs, or why one is left out), the seeds each
    point got and its importance table, as an HTML fragment."""
    from vdes_tune.report.page import img_tag

    parts = []
    if found.get("choice"):
        parts.append("<h3>How sure the choice is</h3><ul>" + "".join(
            f"<li>{html.escape(line)}</li>" for line in found["choice"]) + "</ul>")
    if found.get("memory_front"):
        parts.append("<h3>What more GPU memory buys</h3><p>" + html.escape(FRONT_NOTE) + "</p><ul>" + "".join(
            f"<li>{html.escape(line)}</li>" for line in found["memory_front"]) + "</ul>")
    parts += [f"<figure>{img_tag(data, SEARCH_TITLES.get(name, name))}<figcaption>"
              f"{html.escape(SEARCH_TITLES.get(name, name))}</figcaption></figure>"
              for name, data in found["figures"].items()]
    parts += [f"<p>{html.escape(why)}.</p>" for why in found.get("figure_notes", {}).values()]
    seeds = found.get("seeds")
    if seeds is not None and len(seeds):
        parts.append(f"<h3>Seeds per point</h3><p>{html.escape(SEEDS_NOTE)}</p>"
                     + seeds.to_html(index=False, float_format=lambda x: f"{x:.4g}"))
    if len(found["importance"]):
        parts.append(found["importance"].to_html(index=False, float_format=lambda x: f"{x:.3f}"))
    return "".join(parts)
