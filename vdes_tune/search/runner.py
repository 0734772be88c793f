"""Run a search: Ray Tune Tuner with OptunaSearch (grid points enqueued exactly), optional ASHA,
GPU-fractional trials from the memory estimate, a live summary, and resume with Tuner.restore."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ray import tune

from vdes_tune.config import SearchOptions, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.search.race import RACE_LOG
from vdes_tune.search.space import SearchSpace
from vdes_tune.search.storage import SIDECAR, experiment_path, is_uri, read_text, write_text
from vdes_tune.search.strategy import build_search
from vdes_tune.search.trainable import TrialContext, resources_for, run_trial
from vdes_tune.training.memory import Calibration, load_calibration
from vdes_tune.workspace import Workspace, dataset_fingerprint, read_manifest


def input_size(workspace: Workspace) -> int:
    """Crop side of the ingested shards (what every trial trains on)."""
    found = read_manifest(workspace.dataset.root) or {}
    return int((found.get("config") or {}).get("crop_size", 224))


class LiveSummary(tune.Callback):
    """A Tune callback that prints one line when the picture changes: running, done, best so far."""

    def __init__(self, space: SearchSpace, every_s: float = 15.0) -> None:
        super().__init__()
        self.metric, self.mode, self.every_s = space.metric, space.mode, every_s
        # A race adds a trial for each extra seed of a contender, so its count is only bounded in advance.
        self.total = f"/{space.size} done" if not space.strategy.races else \
            f" of up to {space.strategy.most_trials(space.size)} trials done ({space.size} points raced)"
        self.best: tuple[float, str] | None = None
        self.last_line, self.last_time = "", 0.0

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Track the best objective among feasible results."""
        value = result.get(self.metric)
        if value is None or value != value or not result.get("feasible", 1):
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            shown = ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in sorted(trial.config.items())
                              if not k.startswith("_"))  # not the race's seed block
            self.best = (float(value), f"{trial.trial_id} ({shown})")

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Print a status line when it changed, or every `every_s` seconds."""
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        infeasible = sum(1 for t in trials if (t.last_result or {}).get("feasible") == 0)
        best = f"best {self.metric} {self.best[0]:.4f} by {self.best[1]}" if self.best else "no result yet"
        line = (f"[search] {counts.get('TERMINATED', 0)}{self.total} ({infeasible} infeasible, "
                f"{counts.get('ERROR', 0)} errored), {counts.get('RUNNING', 0)} running, "
                f"{counts.get('PENDING', 0)} pending; {best}")
        now = time.monotonic()
        if line != self.last_line or now - self.last_time > self.every_s:
            print(line, flush=True)
            self.last_line, self.last_time = line, now

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Final status line."""
        self.last_line = ""
        self.on_step_end(0, trials)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _callbacks(space: SearchSpace, opts: SearchOptions, name: str) -> list[Any]:
    callbacks: list[Any] = [LiveSummary(space)]
    if opts.mlflow_uri:
        try:
            from ray.air.integrations.mlflow import MLflowLoggerCallback
            import mlflow  # noqa: F401
        except ImportError:
            raise BadInputError("--mlflow-uri needs MLflow: pip install 'vdes-tune[mlflow]'") from None
        callbacks.append(MLflowLoggerCallback(tracking_uri=opts.mlflow_uri, experiment_name=name,
                                              save_artifact=False))
    return callbacks


def experiment_location(workspace: Workspace, opts: SearchOptions) -> str:
    """Where the experiment of a search lives (its storage, then its name)."""
    return experiment_path(_storage(workspace, opts), opts.name)


def _storage(workspace: Workspace, opts: SearchOptions) -> str:
    """Tune's storage: --storage, else <workspace>/search (a URI when the workspace is one)."""
    storage = opts.storage or workspace.location(workspace.root / "search")
    return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())


def _check_sidecar(path: str, sidecar: dict[str, Any]) -> bool:
    """True when an experiment already exists at `path` for the same space; error when it differs."""
    found = read_text(f"{path}/{SIDECAR}")
    if found is None:
        return False
    previous = json.loads(found)
    for key, what in (("space_hash", "search space"), ("dataset", "dataset")):
        if previous.get(key) != sidecar.get(key):
            raise BadInputError(f"{path}: this experiment was started with another {what}; a restore cannot "
                                f"change it. Use another --name, or delete the folder to start over")
    return True


def trainable(ctx: TrialContext, name: str) -> Any:
    """The trial function with its context and per-trial resources, registered under `name`.

    Tune registers a trainable by its name in a registry that every Tuner run of one Ray job shares (the keys
    carry the job id, not the run), and each trial actor fetches its function, context included, by that name.
    Two runs of one job under one name (replay drivers as Ray tasks, searches started side by side) would train
    each other's context, so each experiment names its own (`trainable_name`)."""
    fn = tune.with_parameters(run_trial, ctx=ctx)
    fn.__name__ = name
    return tune.with_resources(fn, resources_for(ctx))


def trainable_name(experiment: str, space: SearchSpace) -> str:
    """The registry name of a search's trainable: the same for a restore of the same experiment (Tune refuses
    a restore under another name), different for another experiment or space."""
    digest = hashlib.sha256(f"{experiment}\0{space.content_hash()}".encode()).hexdigest()[:16]
    return f"vdes_trial_{digest}"


def build_tuner(space: SearchSpace, ctx: TrialContext, storage: str, name: str, max_concurrent: int | None,
                max_failures: int, callbacks: list[Any], verbose: int = 0, search_alg: Any = None,
                scheduler: Any = None, num_samples: int | None = None, registered_as: str = "") -> Any:
    """The Tuner of a search: the strategy's searcher and scheduler over the trial function (a live search
    and a replay build the same one; a batch of replays passes its own multiplexed searcher and scheduler, and
    its own trainable name)."""
    if search_alg is None:
        search_alg, scheduler = build_search(space, f"{experiment_path(storage, name)}/{RACE_LOG}")
    return tune.Tuner(
        trainable(ctx, registered_as or trainable_name(name, space)),
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=scheduler,
            num_samples=num_samples or space.strategy.most_trials(space.size), max_concurrent_trials=max_concurrent,
            trial_dirname_creator=_trial_dirname, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, callbacks=callbacks,
            verbose=verbose,  # Tune's own trial tables only with -v
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def run_search(space: SearchSpace, work: str | Path, opts: SearchOptions) -> dict[str, Any]:
    """Run (or resume) the search of `space` on the workspace's shards; returns the summary."""
    from vdes_tune.runtime import is_verbose, ray_session
    from vdes_tune.search.export import leaderboard, load_experiment

    workspace = Workspace.at(work)
    workspace.pull(workspace.dataset.manifest)
    dataset = dataset_fingerprint(workspace.dataset)  # refuses a workspace without a finished ingest
    name = opts.name or space.name
    storage = _storage(workspace, opts)
    path = experiment_path(storage, name)
    calibration: Calibration = load_calibration(Path(opts.calibration) if opts.calibration else None)
    sidecar = {"experiment": name, "space": space.source, "space_path": space.path, "space_hash": space.content_hash(),
               "dataset": dataset, "workspace": workspace.spec, "options": to_dict(opts),
               "calibration": {"activation_factor": calibration.activation_factor,
                               "overhead_gb": calibration.overhead_gb, "source": calibration.source}}
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # a killed driver loses at most ~2 s of state
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Snapshots on every checkpoint are what make a killed driver resumable; the warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with ray_session(opts.address, log_dir=workspace.root / "logs", name="search"):
        from vdes_tune.gpus import cluster_nodes, packing_for

        nodes = cluster_nodes()
        use_gpu = any(n.gpus for n in nodes)
        packing = packing_for(nodes, opts.gpu_memory_gb)
        if use_gpu:
            print(f"[search] {packing.note}", flush=True)
        ctx = TrialContext(space, workspace.spec, input_size(workspace), packing, use_gpu, opts.cpus_per_trial,
                           calibration)
        sidecar["packing"] = packing.to_dict() if use_gpu else None  # what the trials were sized against
        resumed = _check_sidecar(path, sidecar) and tune.Tuner.can_restore(path)
        if resumed:
            print(f"[search] resuming {path}", flush=True)
            tuner = tune.Tuner.restore(path, trainable=trainable(ctx, trainable_name(name, space)), resume_unfinished=True, resume_errored=True)
        else:
            write_text(f"{path}/{SIDECAR}", json.dumps(sidecar, indent=2, default=str))
            tuner = build_tuner(space, ctx, storage, name, opts.max_concurrent, opts.max_failures,
                                _callbacks(space, opts, name), verbose=1 if is_verbose() else 0)
        tuner.fit()
    board = leaderboard(load_experiment(path))
    summary = summarise(board, space, name, path)
    summary["resumed"] = resumed
    summary["packing"] = packing.to_dict() if use_gpu else None
    return summary


def summarise(board: Any, space: SearchSpace, name: str, path: str) -> dict[str, Any]:
    """Counts and the best trial of a leaderboard."""
    done = board[board["status"] == "TERMINATED"]
    good = done[done["feasible"] == 1]
    best = good.iloc[0].to_dict() if len(good) else None
    return {"experiment": name, "path": path, "metric": space.metric, "mode": space.mode, "trials": len(board),
            "finished": len(done), "infeasible": int((board["feasible"] == 0).sum()),
            "errored": int((board["status"] == "ERROR").sum()), "best": best}


def print_leaderboard(board: Any, metric: str, top: int = 10, out: Any = None) -> None:
    """The leaderboard's first rows as a text table (on stdout unless `out` is given)."""
    out = out or sys.stdout  # looked up per call: sys.stdout may have been replaced since import
    params = [c for c in board.columns if c.startswith("train.") or c == "arch"]
    cols = ["rank", "trial_id", "status", metric, f"{metric}_std", *params, "seeds", "epochs", "seed_epochs", "race",
            "memory_estimate_gb", "gpu_fraction"]
    cols = [c for c in cols if c in board.columns]
    shown = board.head(top)[cols].copy()
    if "race" in shown and not shown["race"].astype(bool).any():
        shown = shown.drop(columns="race")
    for c in shown.columns:
        if shown[c].dtype.kind == "f":
            shown[c] = shown[c].map(lambda v: f"{v:.4g}")
    print(shown.to_string(index=False), file=out, flush=True)


def search_finished(space: SearchSpace, work: str | Path, opts: SearchOptions) -> bool:
    """True when the experiment of `space` exists for the same space and dataset and is over (what lets a
    pipeline skip the search instead of restoring it)."""
    from vdes_tune.search.export import load_experiment, progress

    workspace = Workspace.at(work)
    workspace.pull(workspace.dataset.manifest)
    path = experiment_path(_storage(workspace, opts), opts.name or space.name)
    found = read_text(f"{path}/{SIDECAR}")
    if found is None:
        return False
    sidecar = json.loads(found)
    if sidecar.get("space_hash") != space.content_hash() or sidecar.get("dataset") != dataset_fingerprint(
            workspace.dataset):
        return False
    return progress(load_experiment(path))[0]
