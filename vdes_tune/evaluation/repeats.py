"""The final evaluation: every (architecture, repeat) job on a pool of Ray actors.

Each actor is one long-lived process (one CUDA context, timm loaded once) holding the GPU fraction the
memory estimator gives the hungriest evaluated architecture, or CPUs when there is no GPU. A job writes
its own record atomically before replying, so a job whose actor dies goes back to the queue (and a
replacement actor is started) and a job already on disk is never trained again: re-running the command finishes what is missing and counts every job once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, TextIO

import pandas as pd

from vdes_tune import __version__
from vdes_tune.config import EvalOptions, EvaluateConfig, config_hash, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.gpus import Packing
from vdes_tune.evaluation.jobs import ArchPlan, Job, JobRunner, check_archs, make_jobs, resolve_configs, result_row
from vdes_tune.workspace import (SCHEMA_VERSION, Workspace, check_outputs, dataset_fingerprint, eval_folders,
                                 output_index, read_manifest, read_parquet_checked, sweep_debris_in, temp_path,
                                 verify_outputs, write_json)

RESULTS = "results.parquet"
PREDICTIONS = "predictions.parquet"


class Progress:
    """Jobs done of total with elapsed time and an ETA from this session's pace (one line per update)."""

    def __init__(self, total: int, done: int, out: TextIO | None = None, enabled: bool = True) -> None:
        self.total, self.done, self.start_done = total, done, done
        # Looked up now, not at import: a caller (a test runner, say) may have replaced sys.stderr since.
        out = out or sys.stderr
        self.out, self.enabled, self.start = out, enabled, time.monotonic()
        self.tty = enabled and hasattr(out, "isatty") and out.isatty()

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at this session's pace; None before the first job of the session finishes."""
        finished = self.done - self.start_done
        if finished <= 0:
            return None
        elapsed = (now if now is not None else time.monotonic()) - self.start
        return elapsed / finished * (self.total - self.done)

    def line(self, note: str = "") -> str:
        """The progress line: bar, counts, percentage, elapsed, ETA."""
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        eta = self.eta_s()
        return (f"[evaluate] [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} jobs "
                f"{100 * self.done / max(self.total, 1):3.0f}%  elapsed {_clock(time.monotonic() - self.start)}"
                f"  ETA {_clock(eta) if eta is not None else '?'}" + (f"  {note}" if note else ""))

    def update(self, note: str = "") -> None:
        """Count one finished job and redraw."""
        self.done += 1
        self.show(note)

    def show(self, note: str = "") -> None:
        if self.enabled:
            end = "" if self.tty and self.done < self.total else "\n"
            print(("\r" if self.tty else "") + self.line(note), end=end, file=self.out, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return (f"{h}h" if h else "") + f"{rest // 60:02d}m{rest % 60:02d}s"


def evaluate(cfg: EvaluateConfig, work: str | Path, opts: EvalOptions = EvalOptions(),
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every missing job of the evaluation in eval/<run>/ and write results.parquet; returns a summary."""
    from vdes_tune.runtime import ray_session

    workspace = Workspace.at(work)
    out = workspace.pull(workspace.evaluation(opts.run))  # a URI workspace: earlier jobs come to the mirror
    workspace.pull(workspace.dataset.manifest)
    dataset = dataset_fingerprint(workspace.dataset)
    if not workspace.uri:  # a URI workspace's shards are read by the actors there, not mirrored here
        check_outputs(workspace.dataset.root)
    vdes = virtual_des_sets(cfg, workspace, dataset)
    with ray_session(opts.address, log_dir=workspace.root / "logs", name="evaluate"):
        plans = resolve_configs(cfg, vdes)
        check_archs(plans)
        jobs = make_jobs(plans, cfg.repeats, cfg.seed)
        _write_plan(out, cfg, plans, vdes, jobs, dataset, opts.force)
        workspace.push(out)  # the plan, and what a --force or a fresh start removed
        _drop_corrupt_jobs(out, opts.verify, log)
        finished = {p.stem for p in (out / "jobs").glob("*.json")}
        todo = [j for j in jobs if j.id not in finished]
        failures: dict[str, str] = {}
        pool: dict[str, Any] = {}
        start = time.perf_counter()
        if todo:
            actors, per_actor, packing = _pool_size(plans, workspace, opts, len(todo))
            pool = {"actors": actors, "per_actor": per_actor, "gpu_memory_gb": opts.gpu_memory_gb,
                    "packing": packing.to_dict() if per_actor.get("GPU") else None}
            log(f"[evaluate] {len(todo)} of {len(jobs)} jobs to run on {actors} actor(s) "
                f"({_describe(per_actor)} each); results in {out}")
            progress = Progress(len(jobs), len(jobs) - len(todo), enabled=opts.progress)
            failures = run_pool(todo, workspace, out, cfg, per_actor, actors, packing.card_gb, opts.max_job_attempts,
                                on_result=lambda r: progress.update(f"{r['job_id']} test F1 {r['test']['f1']:.3f}"))
        else:
            log(f"[evaluate] all {len(jobs)} jobs already finished in {out}")
    workspace.pull(out)  # the records and weights every node's actors pushed
    results = collect(out, jobs)
    write_json(out / "failures.json", failures)
    manifest = {
        "schema_version": SCHEMA_VERSION, "stage": "evaluate", "vdes_tune_version": __version__,
        "run": opts.run, "config": to_dict(cfg), "config_hash": config_hash(cfg), "inputs": dataset,
        "inputs_hash": _plan_identity(plans, dataset, cfg.seed), "rows": len(results), "jobs": len(jobs),
        "failed": sorted(failures), "complete": len(results) == len(jobs), "created_unix": time.time(),
        "last_pool": pool or (read_manifest(out) or {}).get("last_pool", {}), "outputs": output_index(out),
    }
    write_json(out / "manifest.json", manifest)
    workspace.push(out)
    return {"run": opts.run, "output": workspace.location(out), "jobs": len(jobs),
            "ran": len(todo) - len(failures), "skipped": not todo, "failed": failures, "results": str(out / RESULTS), "rows": len(results),
            "seconds": round(time.perf_counter() - start, 2)}


def _drop_corrupt_jobs(out: Path, full: bool, log: Callable[[str], None]) -> None:
    """Remove the record of every finished job whose files (record, predictions, weights) fail the
    manifest's check, so that job runs again instead of feeding a corrupt file to the results."""
    for problem in verify_outputs(out, full):
        rel = problem.path.relative_to(out)
        if rel.parts[0] in ("jobs", "predictions", "weights") and len(rel.parts) == 2:
            record = out / "jobs" / f"{rel.name.split('.')[0]}.json"
            if record.is_file():  # absent: the job is not finished (or --force removed it) and runs anyway
                log(f"[evaluate] {problem}; job {record.stem} runs again")
                record.unlink()


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items() if v)


def _plan_identity(plans: dict[int, ArchPlan], dataset: dict[str, str], seed: int) -> str:
    blob = json.dumps({"archs": {a: config_hash(p.config) for a, p in plans.items()}, "dataset": dataset,
                       "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_plan(out: Path, cfg: EvaluateConfig, plans: dict[int, ArchPlan], vdes: dict[int, str],
                jobs: list[Job], dataset: dict[str, str], force: bool) -> None:
    """Record what this run evaluates; refuse to mix in a different evaluation under the same name."""
    path = out / "plan.json"
    if path.is_file() and not force:
        old = json.loads(path.read_text())
        changed = [a for a, p in plans.items()
                   if str(a) in old.get("archs", {}) and old["archs"][str(a)]["config_hash"] != config_hash(p.config)]
        if changed or old.get("dataset") != dataset or old.get("seed") != cfg.seed:
            what = (f"architecture(s) {', '.join(f'#{a}' for a in changed)} configured differently" if changed
                    else "a different dataset or base seed")
            raise BadInputError(f"{out}: holds an evaluation with {what}; choose another --run or pass --force "
                                f"to discard it")
    elif path.is_file() and force:
        for sub in ("jobs", "running", "weights", "predictions"):
            shutil.rmtree(out / sub, ignore_errors=True)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "running", ignore_errors=True)  # attempts of a killed run: informational only
    for folder in eval_folders(out):  # half-written files of a killed run whose writer is gone
        sweep_debris_in(folder)
    write_json(path, {
        "config": to_dict(cfg), "seed": cfg.seed, "dataset": dataset, "vdes": {str(a): n for a, n in vdes.items()},
        "archs": {str(a): {"config": to_dict(p.config), "config_hash": config_hash(p.config), "origin": p.origin}
                  for a, p in plans.items()},
        "jobs": [{"job_id": j.id, "arch": j.arch, "repeat": j.repeat, "seed": j.config.seed} for j in jobs],
    })


def collect(out: Path, jobs: list[Job]) -> pd.DataFrame:
    """results.parquet (and .csv): exactly one row per finished job of this plan, and predictions.parquet:
    the per-crop scores of those jobs (jobs finished before predictions were kept have none); atomic."""
    from vdes_tune.evaluation.jobs import PREDICTION_COLUMNS

    rows, predictions = [], []
    for job in jobs:
        path = out / "jobs" / f"{job.id}.json"
        if path.is_file():
            rows.append(result_row(json.loads(path.read_text())))
            scores = out / "predictions" / f"{job.id}.parquet"
            if scores.is_file():
                predictions.append(read_parquet_checked(scores))
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["arch", "repeat"]).reset_index(drop=True)
    scores_frame = (pd.concat(predictions, ignore_index=True) if predictions
                    else pd.DataFrame(columns=list(PREDICTION_COLUMNS)))
    for name, write in ((RESULTS, lambda p: frame.to_parquet(p, index=False)),
                        ("results.csv", lambda p: frame.to_csv(p, index=False)),
                        (PREDICTIONS, lambda p: scores_frame.to_parquet(p, index=False))):
        tmp = temp_path(out / name)
        write(tmp)
        os.replace(tmp, out / name)
    return frame


def virtual_des_sets(cfg: EvaluateConfig, workspace: Workspace, dataset: dict[str, str]) -> dict[int, str]:
    """The vdes/<name> set each architecture with a pre-trained generator reads; each must be finished, on
    this dataset (the pretrain stage makes the ones not named in `vdes`)."""
    from vdes_tune.evaluation.jobs import generator_needs

    names = {}
    for a, need in generator_needs(cfg).items():
        folder = workspace.pull(workspace.vdes(need.name))
        made = read_manifest(folder) or {}
        inputs = made.get("inputs") or {}
        if made.get("complete") and all(inputs.get(k) == v for k, v in dataset.items()):
            names[a] = need.name
        elif need.config is None:
            raise BadInputError(f"evaluate config field 'vdes.{a}': {folder} is not a finished virtual DES set of "
                                f"this dataset (see `vdes-tune generators synthesize`)")
        else:
            raise BadInputError(f"architecture #{a} reads the virtual DES of generator {need.name}, which is not "
                                f"made yet: run the pretrain stage first (`vdes-tune evaluate --pretrain-only` with "
                                f"the same settings, or `- pretrain: {{run: ...}}` before the pipeline's evaluate)")
    return names


def _pool_size(plans: dict[int, ArchPlan], workspace: Workspace, opts: EvalOptions, jobs: int
               ) -> tuple[int, dict, Packing]:
    """Actors, the resources of each and the packing: the largest estimated GPU fraction of the evaluated
    architectures (so any actor can run any job) of the card the cluster packs on, or CPUs only on a
    cluster without GPUs."""
    from vdes_tune.gpus import cluster_nodes, packing_for, request, slots
    from vdes_tune.search.runner import input_size
    from vdes_tune.training.memory import estimate, load_calibration, place

    nodes = cluster_nodes()
    packing = packing_for(nodes, opts.gpu_memory_gb)
    per_actor: dict[str, float] = {"CPU": opts.cpus_per_actor, "GPU": 0.0}
    if any(n.gpus for n in nodes):
        cal = load_calibration(Path(opts.calibration) if opts.calibration else None)
        size = input_size(workspace)
        placements = {a: place(estimate(p.config, size, cal).total, packing.budget_gb, packing.card_gb)
                      for a, p in plans.items()}
        bad = {a: p.reason for a, p in placements.items() if not p.feasible}
        if bad:
            raise BadInputError("; ".join(f"architecture #{a}: {why}" for a, why in bad.items()) +
                                " (lower train.batch_size or raise --gpu-memory-gb)")
        per_actor.update(request(max(p.fraction for p in placements.values()), packing))
    fits = slots(nodes, {k: v for k, v in per_actor.items() if k != "CPU"}, opts.cpus_per_actor)
    return max(1, min(opts.actors or fits, jobs)), per_actor, packing


class EvalActor:
    """A Ray actor running jobs one after another in one process."""

    def __init__(self, work: str, run: str, threads: int, gpu_fraction: float, card_gb: float,
                 save_weights: str) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        if gpu_fraction and torch.cuda.is_available():
            # Fractional GPUs share memory unguarded: cap this process at its estimated share.
            from vdes_tune.training.memory import process_share

            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(process_share(gpu_fraction, card_gb, total), 0)
        import ray

        # Which Ray node ran each job goes into its record (hostnames repeat on one-machine clusters).
        self.runner = JobRunner(work, run, "auto", save_weights, ray.get_runtime_context().get_node_id())

    def ready(self) -> bool:
        """Answers once the actor is placed and initialised."""
        return True

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job (see JobRunner.run)."""
        return self.runner.run(Job.from_dict(job))


def run_pool(jobs: list[Job], workspace: Workspace, out: Path, cfg: EvaluateConfig, per_actor: dict[str, float],
             actors: int, card_gb: float, max_attempts: int,
             on_result: Callable[[dict[str, Any]], None]) -> dict[str, str]:
    """Feed jobs to ready actors until all are done; returns {job_id: reason} of jobs that failed for good.

    Actor death is handled here rather than by Ray's restarts: a restarted actor can wait forever for
    resources its lost node held while the other actors sit idle. Instead the job goes back to the
    queue for any live actor, and a replacement actor is started that takes jobs once it is up (on a
    node with room, or on one the autoscaler adds).
    """
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    custom = {k: v for k, v in per_actor.items() if k not in ("CPU", "GPU")}  # the GPU memory it reserves
    remote = ray.remote(EvalActor).options(num_cpus=per_actor["CPU"], num_gpus=per_actor["GPU"],
                                           resources=custom or None, max_restarts=0)
    args = (workspace.spec, out.name, max(1, int(per_actor["CPU"])), per_actor["GPU"], card_gb,
            cfg.save_weights)
    starting: dict[Any, Any] = {}  # ready() ref -> actor still being placed or initialised

    def start_actor() -> None:
        actor = remote.remote(*args)
        starting[actor.ready.remote()] = actor

    for _ in range(actors):
        start_actor()
    pending: deque[Job] = deque(jobs)
    idle: list[Any] = []
    inflight: dict[Any, tuple[Any, Job]] = {}
    attempts: dict[str, int] = {}
    failures: dict[str, str] = {}
    while pending or inflight:
        while idle and pending:
            actor, job = idle.pop(), pending.popleft()
            inflight[actor.run.remote(job.to_dict())] = (actor, job)
        ready, _ = ray.wait([*inflight, *starting], num_returns=1)
        if ready[0] in starting:
            actor = starting.pop(ready[0])
            try:
                ray.get(ready[0])
                idle.append(actor)
            except RayActorError:
                start_actor()  # died while starting (its node went away): try again elsewhere
            continue
        actor, job = inflight.pop(ready[0])
        try:
            record = ray.get(ready[0])
        except RayActorError as exc:
            ray.kill(actor, no_restart=True)
            start_actor()
            attempts[job.id] = attempts.get(job.id, 0) + 1
            if attempts[job.id] < max_attempts:
                pending.appendleft(job)
            else:
                failures[job.id] = f"actor died {attempts[job.id]} times: {type(exc).__name__}"
            continue
        except RayTaskError as exc:
            # The job itself raised (bad data, out of memory): retrying would fail the same way.
            cause = exc.cause if exc.cause is not None else exc
            failures[job.id] = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
            idle.append(actor)
            continue
        idle.append(actor)
        on_result(record)
    for actor in [*idle, *starting.values()]:
        ray.kill(actor)
    return failures
