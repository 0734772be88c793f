"""The Ray Tune trainable: one trial trains one point of a space on some of its seeds.

The Tune config dict becomes a TrainConfig here, once. The trial's GPU share comes from the memory
estimate (`resources_for`); a configuration over the budget is never trained and reports the penalty
value instead, so the searcher learns it is bad rather than seeing a crash.

A trial trains its seeds in lockstep: every seed of a `fixed` strategy, or the seeds a race asked for (the
first block of a point, then one more seed at a time in trials of their own; `race_searcher.py`). Every
epoch it reports the objective (the mean over its seeds of each seed's best-validation-epoch metrics), the
best-so-far mean of every validation metric (what epoch rungs rank), each finished seed's score (what a
race pairs) and its cost in seed-epochs; then it writes a checkpoint from which a restored or retried trial
continues. The test split is never loaded: a search chooses on validation only (paper 3.3).

A replay (`ReplaySource`) runs the same loop over recorded learning curves instead of training.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from vdes_tune.config import TrainConfig
from vdes_tune.search.race import SEED_COUNT, SEED_START
from vdes_tune.search.space import SearchSpace

if TYPE_CHECKING:
    from vdes_tune.gpus import Packing
    from vdes_tune.training.memory import Calibration, MemoryEstimate, Placement

REPORTED = ("f1", "accuracy", "roc_auc", "macro_f1", "loss")
LOWER_IS_BETTER = ("loss",)


@dataclass(frozen=True)
class ReplaySource:
    """Where a replay trial reads its curves: a recorded table, which recorded seed each of a point's seeds is
    in each replay of a batch (the replays' draws, by the trial's `_replay` index), and the epochs of the first
    block at which a decision can be taken (the rungs). A replayed trial reports there and at the end of each
    seed block, not every epoch: a live trial reports every epoch to checkpoint it, and the scheduler acts on
    the same values either way."""

    table: str
    seed_maps: tuple[tuple[int, ...], ...]
    report_epochs: tuple[int, ...] = ()


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares, passed by reference: the workspace path or URI, never the shards."""

    space: SearchSpace
    work: str
    input_size: int
    packing: Packing  # the card fractions are shares of, and the most a configuration may use
    use_gpu: bool
    cpus_per_trial: float
    calibration: Calibration | None  # None for a replay, which plans no memory
    replay: ReplaySource | None = None

    @property
    def penalty(self) -> float:
        """The value an infeasible trial reports: the worst a [0, 1] metric can be."""
        return 0.0 if self.space.mode == "max" else 1.0


def plan_point(ctx: TrialContext, point: dict[str, Any]) -> tuple[TrainConfig, MemoryEstimate, Placement]:
    """The config, memory estimate and GPU placement of one point of the space."""
    from vdes_tune.training.memory import estimate, place

    cfg = ctx.space.train_config(point)
    est = estimate(cfg, ctx.input_size, ctx.calibration)
    return cfg, est, place(est.total, ctx.packing.budget_gb, ctx.packing.card_gb)


def resources_for(ctx: TrialContext) -> Callable[[dict[str, Any]], Any]:
    """Per-config resources for `tune.with_resources`: the estimated fraction of the packing card (and its
    memory where nodes advertise theirs), or CPUs only."""
    from ray import tune

    from vdes_tune.gpus import request

    def resources(config: dict[str, Any]) -> Any:
        bundle: dict[str, float] = {"CPU": ctx.cpus_per_trial}
        if ctx.use_gpu:
            placement = plan_point(ctx, _point(config))[2]
            if placement.feasible:  # an infeasible trial only reports its penalty: no GPU for it
                bundle.update(request(placement.fraction, ctx.packing))
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


def _best_so_far(history: list[dict[str, Any]], metric: str) -> float:
    values = [float(r["val"].get(metric, float("nan"))) for r in history]
    values = [v for v in values if v == v]
    if not values:
        return float("nan")
    return min(values) if metric in LOWER_IS_BETTER else max(values)


def aggregate(progress: list[dict[str, Any]], metric: str, last: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """The objective and validation metrics (mean over seeds of each seed's best-validation-epoch metrics, and
    the objective's std), the best-so-far mean of each metric (`best_val_*`: epoch rungs rank these), and the
    mean of the epoch just trained."""
    out: dict[str, Any] = {}
    for m in REPORTED:
        mean, std = _mean_std([float(p["best_val"].get(m, float("nan"))) for p in progress])
        out[f"val_{m}"] = mean
        if f"val_{m}" == metric:
            out[f"{metric}_std"] = std
        out[f"best_val_{m}"] = _mean_std([_best_so_far(p["history"], m) for p in progress])[0]
    out["best_epoch_mean"] = statistics.fmean(p["best_epoch"] for p in progress)
    if last:
        out["epoch_val_f1"] = statistics.fmean(float(r["val"]["f1"]) for r in last)
        losses = [r["train_loss"] for r in last if "train_loss" in r]
        if losses:
            out["train_loss"] = statistics.fmean(losses)
    return out


class _ReplayTask:
    """Stands in for a classification task in the one training loop: each evaluation returns the next
    recorded epoch's validation metrics, so the loop's own best-epoch choice (ties included) applies."""

    selection_metric = "f1"
    selection_mode = "max"
    tie_breakers = (("roc_auc", "max"), ("loss", "min"))

    def __init__(self, rows: list[dict[str, float]]) -> None:
        self.rows, self.epoch = rows, 0

    def train(self, mode: bool = True) -> None:
        """Nothing to switch."""

    def train_step(self, batch: Any) -> dict[str, float]:
        """Never called: a replay has no training batches."""
        return {}

    def evaluate(self, batches: Any) -> dict[str, Any]:
        """The recorded metrics of the next epoch."""
        row = self.rows[self.epoch]
        self.epoch += 1
        return dict(row)

    def state_dict(self) -> dict[str, Any]:
        """No weights."""
        return {}

    def training_state(self) -> dict[str, Any]:
        """Where in the curve it is."""
        return {"epoch": self.epoch}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Continue the curve where a checkpoint left it."""
        self.epoch = int(state["epoch"])


_TABLES: dict[str, Any] = {}


def replay_fitter(table_path: str, epochs: int, point: dict[str, Any], recorded_seed: int) -> Any:
    """A Fitter over the recorded curve of (point, recorded seed), for its first `epochs` epochs."""
    from vdes_tune.search.curves import read_table
    from vdes_tune.training.engine import Fitter

    if table_path not in _TABLES:
        _TABLES[table_path] = read_table(table_path)
    table = _TABLES[table_path]
    rows = table.curve(table.point_of(point), recorded_seed)
    return Fitter(_ReplayTask(rows), [], [None], None, min(epochs, len(rows)), keep_best_state=False)


def trial_seeds(space: SearchSpace, config: dict[str, Any]) -> list[int]:
    """The training seeds of a trial: the strategy's first block, or the ones a race asked for."""
    seeds = space.seeds(_point(config))
    start = int(config.get(SEED_START, 0))
    return seeds[start:start + int(config.get(SEED_COUNT, space.strategy.seeds_at_start))]


def report_of(fitters: list[Any], seeds: list[int], metric: str, last: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """What a trial reports after an epoch (see the module docstring)."""
    progress = [f.progress() for f in fitters]
    out = aggregate(progress, metric, last)
    key = metric.removeprefix("val_")
    done = [(s, p) for s, p, f in zip(seeds, progress, fitters) if f.done]
    out.update({"seeds_done": len(done), "seed_epochs": sum(f.epoch for f in fitters),
                "seed_scores": {str(s): float(p["best_val"].get(key, float("nan"))) for s, p in done},
                "epoch": max(f.epoch for f in fitters)})
    return out


def _save(folder: Path, fitters: list[Any], point: dict[str, Any], with_weights: bool) -> None:
    import torch

    for r, fitter in enumerate(fitters if with_weights else []):
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
    """Tune function trainable: train the trial's seeds in lockstep, report every epoch, checkpoint."""
    import ray
    from ray import tune

    space, point = ctx.space, _point(config)
    live = ctx.replay is None
    seeds = trial_seeds(space, config)
    info: dict[str, Any] = {"repeats": len(seeds), "seed_start": int(config.get(SEED_START, 0)),
                            "trial_start": time.time(), "node_id": ray.get_runtime_context().get_node_id()}
    if live:
        cfg, est, placement = plan_point(ctx, point)
        info.update(memory_estimate_gb=round(est.total_gb, 3), gpu_fraction=placement.fraction if ctx.use_gpu else 0.0)
        if ctx.use_gpu:
            info["gpu_card_gb"] = ctx.packing.card_gb
        if not placement.feasible:
            tune.report({space.metric: ctx.penalty, "feasible": 0, "epoch": 0, "seed_epochs": 0, "seeds_done": 0,
                         **info})
            return
        fitters, device = _live_fitters(ctx, cfg, placement, seeds)
        if device is not None and device.type == "cuda":
            info["gpu_cap_gb"] = _gpu_cap_gb(device, placement.fraction, ctx.packing.card_gb)
    else:  # a replay trains nothing, so it has no memory to plan
        cfg = space.train_config(point)
        seed_map = ctx.replay.seed_maps[int(config.get("_replay", 0))]
        base = space.seeds(point)[0]
        fitters = [replay_fitter(ctx.replay.table, cfg.epochs, point, seed_map[s - base]) for s in seeds]
        device = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            _restore(Path(folder), fitters)
    if all(f.done for f in fitters):  # restored after its last epoch: report the result once more
        tune.report({**report_of(fitters, seeds, space.metric), "feasible": 1, **info})
        return
    step = _stepper(fitters, device)
    # Looked up before the loop: a trial the scheduler stops leaves through SystemExit raised in
    # tune.report, and an `except` clause that imported torch then would outlast Tune's 2 s wait to
    # reuse the actor for the next trial.
    oom = _oom_error() if live else ()
    rungs = ctx.replay.report_epochs if ctx.replay else ()
    try:
        while not all(f.done for f in fitters):
            last = step()
            metrics = {**report_of(fitters, seeds, space.metric, last), "feasible": 1, **info,
                       "report_time": time.time(), **_gpu_peak(device)}
            if not live:  # a replay has nothing worth a checkpoint: its curves are on disk
                if metrics["epoch"] in rungs or all(f.done for f in fitters):
                    tune.report(metrics)
                continue
            with tempfile.TemporaryDirectory() as folder:
                _save(Path(folder), fitters, point, with_weights=True)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    except oom:
        # Over its share despite the estimate: this trial fails alone and tells the searcher so.
        # The penalty last: the seeds' partial metrics must not overwrite it (they did, so the searcher was
        # told an out-of-memory point scored its first epochs' F1).
        tune.report({**report_of(fitters, seeds, space.metric), space.metric: ctx.penalty, "feasible": 0, "oom": 1,
                     **info})


def _gpu_cap_gb(device: Any, fraction: float, card_gb: float) -> float:
    """The per-process cap a trial runs under (GiB of the allocator, as torch enforces it)."""
    import torch

    from vdes_tune.training.memory import GIB, process_share

    total = torch.cuda.get_device_properties(device).total_memory
    return round(process_share(fraction, card_gb, total) * total / GIB, 3)


def _gpu_peak(device: Any) -> dict[str, float]:
    """This process's peak reserved GPU memory so far (GiB), to set against its cap; nothing off the GPU."""
    if device is None or device.type != "cuda":
        return {}
    import torch

    return {"gpu_peak_gb": round(torch.cuda.max_memory_reserved(device) / 1024 ** 3, 3)}


def _oom_error() -> type[BaseException]:
    import torch

    return torch.cuda.OutOfMemoryError


def _live_fitters(ctx: TrialContext, cfg: TrainConfig, placement: Placement, seeds: list[int]
                  ) -> tuple[list[Any], Any]:
    """One Fitter per seed over the workspace's train and validation splits, and the device."""
    import torch

    from vdes_tune.training.classify import SEARCH_SPLITS, load_frames, pick_device, prepare_classification
    from vdes_tune.workspace import Workspace

    torch.set_num_threads(max(1, int(ctx.cpus_per_trial)))
    device = pick_device(cfg.device)
    if device.type == "cuda":
        from vdes_tune.training.memory import process_share

        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(process_share(placement.fraction, ctx.packing.card_gb, total), device)
    workspace = Workspace.at(ctx.work)
    frames = load_frames(cfg, workspace, SEARCH_SPLITS)
    # Seeds run in lockstep so every report averages the same epoch; on a GPU the idle ones wait on the CPU,
    # so the trial's peak is one seed's (what the estimate counts).
    park = device.type == "cuda" and len(seeds) > 1
    fitters = []
    for seed in seeds:
        run = prepare_classification(replace(cfg, seed=seed), workspace, frames, device)
        if park:
            run.task.to(torch.device("cpu"))
        fitters.append(run.fitter(keep_best_state=False))
    return fitters, device


def _stepper(fitters: list[Any], device: Any) -> Callable[[], list[dict[str, Any]]]:
    """A function that trains one epoch of every unfinished seed."""

    def step() -> list[dict[str, Any]]:
        last = []
        park = device is not None and device.type == "cuda" and len(fitters) > 1
        for fitter in [f for f in fitters if not f.done]:
            if park:
                fitter.task.to(device)
            last.append(fitter.step())
            if park:
                fitter.task.to(type(device)("cpu"))
        return last
    return step
