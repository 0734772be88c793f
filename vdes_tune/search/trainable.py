"""The Ray Tune trainable: one trial is one point of a space, trained once per repeat seed in lockstep.

The Tune config dict becomes a TrainConfig here, once. The trial's GPU share comes from the memory
estimate (`resources_for`); a configuration over the budget is never trained and reports the
penalty value instead, so the searcher learns it is bad rather than seeing a crash. Every epoch the
trial reports the mean over its repeats of each repeat's best-validation-epoch metrics and writes a
checkpoint from which a restored or retried trial continues.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from vdes_tune.config import TrainConfig
from vdes_tune.search.space import SearchSpace
from vdes_tune.training.memory import Calibration, MemoryEstimate, Placement, estimate, place

REPORTED = ("f1", "accuracy", "roc_auc", "macro_f1")


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares, passed by reference: the workspace path or URI, never the shards."""

    space: SearchSpace
    work: str
    input_size: int
    budget_gb: float
    use_gpu: bool
    cpus_per_trial: float
    calibration: Calibration

    @property
    def penalty(self) -> float:
        """The value an infeasible trial reports: the worst a [0, 1] metric can be."""
        return 0.0 if self.space.mode == "max" else 1.0


def plan_point(ctx: TrialContext, point: dict[str, Any]) -> tuple[TrainConfig, MemoryEstimate, Placement]:
    """The config, memory estimate and GPU placement of one point of the space."""
    cfg = ctx.space.train_config(point)
    est = estimate(cfg, ctx.input_size, ctx.calibration)
    return cfg, est, place(est.total, ctx.budget_gb)


def resources_for(ctx: TrialContext) -> Callable[[dict[str, Any]], Any]:
    """Per-config resources for `tune.with_resources`: the estimated GPU fraction, or CPUs only."""
    from ray import tune

    def resources(config: dict[str, Any]) -> Any:
        bundle: dict[str, float] = {"CPU": ctx.cpus_per_trial}
        if ctx.use_gpu:
            placement = plan_point(ctx, _point(config))[2]
            if placement.feasible:  # an infeasible trial only reports its penalty: no GPU for it
                bundle["GPU"] = placement.fraction
        return tune.PlacementGroupFactory([bundle])
    return resources


def _point(config: dict[str, Any]) -> dict[str, Any]:
    """The searched values of a Tune config (OptunaSearch may nest dotted names no further)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _mean_std(values: list[float]) -> tuple[float, float]:
    clean = [v for v in values if v == v]
    if not clean:
        return float("nan"), float("nan")
    return statistics.fmean(clean), statistics.pstdev(clean) if len(clean) > 1 else 0.0


def aggregate(progress: list[dict[str, Any]], metric: str, last: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mean (and std of the objective) over repeats of each repeat's best-validation-epoch metrics."""
    out: dict[str, Any] = {}
    for m in REPORTED:
        for split in ("val", "test"):
            mean, std = _mean_std([float(p[f"best_{split}"].get(m, float("nan"))) for p in progress])
            out[f"{split}_{m}"] = mean
            if f"{split}_{m}" == metric:
                out[f"{metric}_std"] = std
    out["best_epoch_mean"] = statistics.fmean(p["best_epoch"] for p in progress)
    if last:
        out["epoch_val_f1"] = statistics.fmean(float(r["val"]["f1"]) for r in last)
        losses = [r["train_loss"] for r in last if "train_loss" in r]
        if losses:
            out["train_loss"] = statistics.fmean(losses)
    return out


def _save(folder: Path, fitters: list[Any], point: dict[str, Any]) -> None:
    import torch

    for r, fitter in enumerate(fitters):
        torch.save(fitter.task.training_state(), folder / f"repeat-{r}.pt")
    (folder / "trial.json").write_text(json.dumps({"point": point, "repeats": [f.progress() for f in fitters]},
                                                  default=float))


def _restore(folder: Path, fitters: list[Any]) -> None:
    import torch

    saved = json.loads((folder / "trial.json").read_text())
    for r, fitter in enumerate(fitters):
        state = torch.load(folder / f"repeat-{r}.pt", map_location="cpu", weights_only=True)
        fitter.restore(saved["repeats"][r], state)


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable: train every repeat seed epoch by epoch, report the mean, checkpoint."""
    import torch
    from ray import tune

    from vdes_tune.training.classify import load_frames, pick_device, prepare_classification
    from vdes_tune.workspace import Workspace

    space, point = ctx.space, _point(config)
    cfg, est, placement = plan_point(ctx, point)
    import ray

    info = {"memory_estimate_gb": round(est.total_gb, 3), "gpu_fraction": placement.fraction if ctx.use_gpu else 0.0,
            "repeats": space.repeats, "trial_start": time.time(), "node_id": ray.get_runtime_context().get_node_id()}
    if not placement.feasible:
        tune.report({space.metric: ctx.penalty, "feasible": 0, "epoch": 0, **info})
        return
    torch.set_num_threads(max(1, int(ctx.cpus_per_trial)))
    device = pick_device(cfg.device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        share = placement.fraction * ctx.budget_gb * 1024 ** 3 / total
        torch.cuda.set_per_process_memory_fraction(min(1.0, share), device)
    workspace = Workspace.at(ctx.work)
    frames = load_frames(cfg, workspace)
    # Repeats run in lockstep so every report averages the same epoch; on a GPU the idle ones wait
    # on the CPU, so the trial's peak is one repeat's (what the estimate counts).
    park = device.type == "cuda" and space.repeats > 1
    fitters = []
    for seed in space.seeds(point):
        run = prepare_classification(replace(cfg, seed=seed), workspace, frames, device)
        if park:
            run.task.to(torch.device("cpu"))
        fitters.append(run.fitter(keep_best_state=False))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            _restore(Path(folder), fitters)
    if all(f.done for f in fitters):  # restored after its last epoch: report the result once more
        tune.report({**aggregate([f.progress() for f in fitters], space.metric), "feasible": 1,
                     "epoch": max(f.epoch for f in fitters), **info})
        return
    try:
        while not all(f.done for f in fitters):
            last = []
            for fitter in fitters:
                if fitter.done:
                    continue
                if park:
                    fitter.task.to(device)
                last.append(fitter.step())
                if park:
                    fitter.task.to(torch.device("cpu"))
            metrics = aggregate([f.progress() for f in fitters], space.metric, last)
            with tempfile.TemporaryDirectory() as folder:
                _save(Path(folder), fitters, point)
                tune.report({**metrics, "feasible": 1, "epoch": max(f.epoch for f in fitters), **info,
                             "report_time": time.time()},
                            checkpoint=tune.Checkpoint.from_directory(folder))
    except torch.cuda.OutOfMemoryError:
        # Over its share despite the estimate: this trial fails alone and tells the searcher so.
        tune.report({space.metric: ctx.penalty, "feasible": 0, "oom": 1, "epoch": fitters[0].epoch, **info})
