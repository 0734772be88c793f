"""What the final evaluation runs: one TrainConfig per architecture from the exported best configurations,
the (architecture, repeat) jobs with their seeds, and one job's training (plain PyTorch, no Ray)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vdes_tune.config import EvaluateConfig, GeneratorConfig, TrainConfig, config_hash, from_dict, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.models.architectures import Architecture, get_architecture
from vdes_tune.generator_registry import UNET_SHAPE
from vdes_tune.search.space import ARCH_KEY
from vdes_tune.workspace import temp_path, write_json

# Set per architecture or per job, never carried from another architecture's search.
PER_ARCH_FIELDS = frozenset({"arch", "seed", "vdes", "generator_weights", "recon_weight"})
METRICS = ("accuracy", "f1", "macro_f1", "roc_auc")


@dataclass(frozen=True)
class ArchPlan:
    """The configuration every repeat of one architecture trains, and where each setting came from."""

    arch: int
    config: TrainConfig
    origin: dict[str, str]


@dataclass(frozen=True)
class Job:
    """One (architecture, repeat): the unit an evaluation actor runs."""

    arch: int
    repeat: int
    config: TrainConfig

    @property
    def id(self) -> str:
        return job_id(self.arch, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        """Plain form, for Ray and for the plan file."""
        return {"arch": self.arch, "repeat": self.repeat, "config": to_dict(self.config)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        return cls(int(data["arch"]), int(data["repeat"]), from_dict(TrainConfig, data["config"]))


def job_id(arch: int, repeat: int) -> str:
    """File-name-safe id of a job: a3-r007."""
    return f"a{arch}-r{repeat:03d}"


def job_seed(base: int, repeat: int) -> int:
    """Seed of repeat `repeat`. The architecture is deliberately not mixed in: repeat k of every
    architecture shares data order, augmentation and classifier initialisation (paired repeats).
    Derived through SeedSequence so it never equals a search seed (train.seed + r) the best
    configuration was selected on."""
    return int(np.random.SeedSequence([base, repeat, 0x5EED]).generate_state(1)[0] % (2 ** 31 - 1))


def generator_shape_fields(arch: Architecture) -> tuple[str, ...]:
    """The TrainConfig fields that shape an architecture's generator (none without one)."""
    from vdes_tune.generator_registry import GENERATORS

    return GENERATORS.get(arch.generator).shape_fields if arch.generator else ()


def resolve_configs(cfg: EvaluateConfig, vdes: dict[int, str] | None = None) -> dict[int, ArchPlan]:
    """Paper defaults, then the searched values of each best file (a later file wins; an architecture
    absent from a file takes that file's best entry), then `cfg.train`; `vdes` names #4/#6's virtual DES."""
    from vdes_tune.search.export import read_best_file

    values: dict[int, dict[str, Any]] = {a: {} for a in cfg.archs}
    origin: dict[int, dict[str, str]] = {a: {} for a in cfg.archs}
    for path in cfg.configs:
        best = read_best_file(path)
        for a in cfg.archs:
            entry = best.entries.get(a) or best.top()
            shaped_by = generator_shape_fields(get_architecture(a))
            for key, value in entry.searched.items():
                name = key.removeprefix("train.")
                if key == ARCH_KEY or name in PER_ARCH_FIELDS or (name in UNET_SHAPE and name not in shaped_by):
                    continue
                values[a][name] = value
                origin[a][name] = f"{best.experiment} (#{entry.arch})"
    plans = {}
    for a in cfg.archs:
        fields = {**values[a], **cfg.train, "arch": a}
        origin[a].update({k: "evaluate.train" for k in cfg.train})
        if vdes and a in vdes:
            fields["vdes"] = vdes[a]
        try:
            plans[a] = ArchPlan(a, from_dict(TrainConfig, fields), origin[a])
        except BadInputError as exc:
            raise BadInputError(f"architecture #{a}: {exc}") from exc
    return plans


@dataclass(frozen=True)
class GeneratorNeed:
    """The virtual DES one architecture reads: a named finished set (`vdes:`), or a generator the pretrain
    stage trains and synthesises (`config` set), named by its config so a finished one is found again."""

    arch: int
    name: str
    config: GeneratorConfig | None = None


def needs_pretrain(cfg: EvaluateConfig) -> bool:
    """True when an evaluated architecture reads a generator the pretrain stage makes (none named in `vdes`);
    unlike generator_needs, it reads no best file, so a pipeline can check it before any stage ran."""
    from vdes_tune.models.architectures import pretrained_generators

    return any(a in cfg.archs and a not in cfg.vdes for a in pretrained_generators())


def generator_needs(cfg: EvaluateConfig) -> dict[int, GeneratorNeed]:
    """Every evaluated architecture with a pre-trained generator (#4, #6, #7) and the virtual DES it reads:
    the set named in `vdes`, else the generator's paper defaults, then the shape the architecture was
    searched or set with (the U-Net/PT takes #4's searched width and depth), then `generators` overrides."""
    from vdes_tune.generator_registry import GENERATORS
    from vdes_tune.models.architectures import pretrained_generators

    plans = resolve_configs(cfg)
    needs = {}
    for a, model in pretrained_generators().items():
        if a not in cfg.archs:
            continue
        if a in cfg.vdes:
            needs[a] = GeneratorNeed(a, cfg.vdes[a])
            continue
        shape = {k: getattr(plans[a].config, k) for k in GENERATORS.get(model).shape_fields if k in plans[a].origin}
        gcfg = GeneratorConfig.for_model(model, **{"seed": cfg.seed, **shape, **cfg.generators.get(model, {})})
        needs[a] = GeneratorNeed(a, f"{model}-{config_hash(gcfg)[:8]}", gcfg)
    return needs


def make_jobs(plans: dict[int, ArchPlan], repeats: int, base_seed: int) -> list[Job]:
    """Every (architecture, repeat), repeat-major so an interrupted run has every architecture alike."""
    return [Job(a, r, replace(plans[a].config, seed=job_seed(base_seed, r)))
            for r in range(repeats) for a in sorted(plans)]


def result_row(record: dict[str, Any]) -> dict[str, Any]:
    """The flat results.parquet row of a job record."""
    row = {k: record[k] for k in ("job_id", "arch", "arch_name", "repeat", "seed", "best_epoch", "epochs",
                                  "config_hash", "seconds", "attempt", "device", "node")}
    row["node_id"] = record.get("node_id", "")
    for split in ("val", "test"):
        row.update({f"{split}_{m}": float(record[split].get(m, float("nan"))) for m in METRICS})
    for k, v in (record.get("image") or {}).items():
        row[f"image_{k}"] = v
    return row


class JobRunner:
    """Runs jobs in one process: keeps the last split frames, so the repeats of an architecture read
    the shards once; writes each job's record atomically and returns it."""

    def __init__(self, work: str, run: str, device: str = "auto", save_weights: str = "first",
                 node_id: str = "") -> None:
        from vdes_tune.workspace import Workspace

        # `work` as any node reaches it: records go to this node's view of eval/<run> and are pushed from there.
        self.workspace = Workspace.at(work)
        self.out, self.save_weights, self.node_id = self.workspace.evaluation(run), save_weights, node_id
        self.device_name = device
        self._frames: tuple[str, Any] | None = None

    def _frames_for(self, cfg: TrainConfig) -> Any:
        from vdes_tune.training.classify import load_frames

        arch = get_architecture(cfg.arch)
        key = cfg.vdes if arch.generator and not arch.end_to_end else ""  # the only thing that changes the frames
        if self._frames is None or self._frames[0] != key:
            self._frames = (key, load_frames(cfg, self.workspace))
        return self._frames[1]

    def _write(self, path: Path, data: Any) -> None:
        write_json(path, data)
        self.workspace.push(path)

    def _write_predictions(self, job: Job, run: Any, frames: dict[str, Any], scores: dict[str, Any]) -> str:
        """predictions/<job>.parquet, written atomically before the job's record marks it done."""
        folder = self.out / "predictions"
        folder.mkdir(exist_ok=True)
        final = folder / f"{job.id}.parquet"
        tmp = temp_path(final)
        predictions_frame(job, frames, scores).to_parquet(tmp, index=False)
        os.replace(tmp, final)
        self.workspace.push(final)
        return f"predictions/{final.name}"

    def run(self, job: Job) -> dict[str, Any]:
        """Train one job, or return its record when a previous attempt already finished it."""
        import json
        import socket

        import torch

        from vdes_tune.training.classify import pick_device, prepare_classification

        done = self.workspace.pull(self.out / "jobs" / f"{job.id}.json")
        if done.is_file():  # finished before its reply was lost (actor died, driver killed): same answer
            return json.loads(done.read_text())
        running = self.workspace.pull(self.out / "running" / f"{job.id}.json")
        running.parent.mkdir(parents=True, exist_ok=True)
        done.parent.mkdir(parents=True, exist_ok=True)
        attempt = 1 + (json.loads(running.read_text())["attempt"] if running.is_file() else 0)
        self._write(running, {"job_id": job.id, "pid": os.getpid(), "attempt": attempt, "started": time.time(),
                              "node_id": self.node_id})
        start = time.perf_counter()
        cfg = job.config
        device = pick_device(cfg.device if self.device_name == "auto" else self.device_name)
        frames = self._frames_for(cfg)
        run = prepare_classification(cfg, self.workspace, frames, device)
        fitter = run.fitter()
        while not fitter.done:
            fitter.step()
        result = fitter.result
        arch = get_architecture(cfg.arch)
        record: dict[str, Any] = {
            "job_id": job.id, "arch": job.arch, "arch_name": arch.name, "repeat": job.repeat, "seed": cfg.seed,
            "best_epoch": result.best_epoch, "epochs": len(result.history), "config": to_dict(cfg),
            "config_hash": config_hash(cfg), "val": _scalars(result.best_val), "test": _scalars(result.best_test),
            "history": result.history, "crops": run.crops, "attempt": attempt, "device": str(device),
            "node": socket.gethostname(), "node_id": self.node_id, "vdes_source": run.vdes_source,
        }
        record["predictions"] = self._write_predictions(job, run, frames, result.best_scores)
        if arch.end_to_end and run.task.generator is not None:
            record["image"] = _generator_quality(run, result.best_state, frames["test"], device)
        if self.save_weights == "all" or (self.save_weights == "first" and job.repeat == 0):
            (self.out / "weights").mkdir(exist_ok=True)
            tmp = temp_path(self.out / "weights" / f"{job.id}.pt")
            torch.save(result.best_state, tmp)
            os.replace(tmp, self.out / "weights" / f"{job.id}.pt")
            self.workspace.push(self.out / "weights" / f"{job.id}.pt")
        record["seconds"] = round(time.perf_counter() - start, 3)
        self._write(done, record)
        self.workspace.discard(running)
        return record


PREDICTION_COLUMNS = ("job_id", "arch", "repeat", "crop_id", "patient_id", "split", "label", "score")


def predictions_frame(job: Job, frames: dict[str, Any], scores: dict[str, Any]) -> Any:
    """Per-crop malignant probabilities of the best-validation epoch: one row per val/test crop, in the
    evaluation loader's order (the frame's order)."""
    import pandas as pd

    parts = []
    for split in ("val", "test"):
        if split not in scores:
            continue
        frame, score = frames[split], np.asarray(scores[split], np.float32)
        if len(frame) != len(score):
            raise RuntimeError(f"{job.id}: {len(score)} {split} scores for {len(frame)} crops")
        parts.append(pd.DataFrame({
            "job_id": job.id, "arch": job.arch, "repeat": job.repeat, "crop_id": frame["crop_id"].to_numpy(),
            "patient_id": frame["patient_id"].to_numpy().astype(np.int64), "split": split,
            "label": frame["label"].to_numpy().astype(np.int8), "score": score}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(PREDICTION_COLUMNS))


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _generator_quality(run: Any, best_state: dict[str, Any], test: Any, device: Any) -> dict[str, float]:
    """Whole-crop and lesion-region quality of #5's co-trained U-Net (best epoch) against the real DES, test split."""
    from torch.utils.data import DataLoader

    from vdes_tune.evaluation.quality import lesion_masks, quality
    from vdes_tune.training.data import CropDataset
    from vdes_tune.training.tasks import generator_outputs

    generator = run.task.generator
    generator.load_state_dict(best_state["generator"])
    generator.eval()
    batches = DataLoader(CropDataset(test, ("le", "des")), batch_size=run.cfg.batch_size)
    pred, target = generator_outputs(generator, batches, device)
    scores = quality(pred, target, lesion_masks(test))
    return {k: float(v) for k, v in scores.items() if k != "n"}


def check_archs(plans: dict[int, ArchPlan]) -> None:
    """#4 and #6 need a virtual DES set or generator weights; say which is missing before any job starts."""
    for a, plan in plans.items():
        arch = get_architecture(a)
        if arch.generator and not arch.end_to_end and not (plan.config.vdes or plan.config.generator_weights):
            raise BadInputError(f"architecture #{a} {arch.name}: no virtual DES (set evaluate.vdes.{a} or let "
                                f"evaluate train its generator)")
