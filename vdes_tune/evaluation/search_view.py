"""A search, visualised from its Tune results: an Optuna study rebuilt from the trials (no search is re-run),
its optimisation history, parallel coordinates and parameter importances (Optuna's own evaluators and plots),
as figures for the evaluation report and as `vdes-tune report --search EXPERIMENT`."""

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
from vdes_tune.search.export import Experiment, leaderboard, load_experiment
from vdes_tune.search.space import Domain
from vdes_tune.workspace import SCHEMA_VERSION, Workspace, atomic_dir, write_json

IMPORTANCE_SEED = 0


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


def importances(study: Any) -> tuple[pd.DataFrame, str]:
    """fANOVA importance of each searched parameter (Optuna's evaluator, seeded), or an empty table and why."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return pd.DataFrame(columns=["parameter", "importance"]), f"{len(complete)} complete trial(s): need 2"
    if len({t.value for t in complete}) < 2:
        return pd.DataFrame(columns=["parameter", "importance"]), "every complete trial has the same value"
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED))
    except (RuntimeError, ValueError) as exc:
        return pd.DataFrame(columns=["parameter", "importance"]), str(exc)
    return pd.DataFrame({"parameter": list(found), "importance": list(found.values())}), ""


def figures(study: Any) -> dict[str, bytes]:
    """Optimisation history, parallel coordinates and parameter importances as PNGs (Optuna's matplotlib
    plots); a plot Optuna cannot draw for this study is left out."""
    import optuna
    import optuna.visualization.matplotlib as vm

    from vdes_tune.evaluation.figures import _png, _pyplot

    _pyplot()
    out = {}
    plots = {"search_history.png": lambda: vm.plot_optimization_history(study),
             "search_parallel.png": lambda: vm.plot_parallel_coordinate(study),
             "search_importance.png": lambda: vm.plot_param_importances(
                 study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED))}
    for name, draw in plots.items():
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
    return {"experiment": exp.sidecar.get("experiment", exp.space.name), "path": exp.path, "metric": exp.space.metric,
            "mode": exp.space.mode, "trials": len(study.trials), "states": states,
            "complete": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
            "importance": table, "importance_note": why, "figures": figures(study), "leaderboard": leaderboard(exp)}


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
    from vdes_tune.evaluation.report import html_page, markdown_table
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
            f"{found['metric']} ({found['mode']}); generated {created}.")
    note = (f"Parameter importance: fANOVA (Optuna, seed {IMPORTANCE_SEED}) over the {found['complete']} complete "
            f"trials." if not found["importance_note"] else f"No parameter importance: {found['importance_note']}.")
    with atomic_dir(final) as tmp:
        (tmp / "figures").mkdir()
        (tmp / "tables").mkdir()
        for name, data in found["figures"].items():
            (tmp / "figures" / name).write_bytes(data)
        found["importance"].to_csv(tmp / "tables" / "importance.csv", index=False)
        found["leaderboard"].to_csv(tmp / "tables" / "trials.csv", index=False)
        md = [f"# vdes-tune search report: {found['experiment']}\n", head + "\n", note + "\n"]
        md += [f"![{n}](figures/{n})\n" for n in found["figures"]]
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


def search_html(found: dict[str, Any]) -> str:
    """The figures of one search (inline PNGs) and its importance table, as an HTML fragment."""
    from vdes_tune.evaluation.report import img_tag

    parts = [f"<figure>{img_tag(data, SEARCH_TITLES.get(name, name))}<figcaption>"
             f"{html.escape(SEARCH_TITLES.get(name, name))}</figcaption></figure>"
             for name, data in found["figures"].items()]
    if len(found["importance"]):
        parts.append(found["importance"].to_html(index=False, float_format=lambda x: f"{x:.3f}"))
    return "".join(parts)
