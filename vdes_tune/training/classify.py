"""One classification run of an architecture: data, models, task, fit, metrics JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch.utils.data import DataLoader

from vdes_tune.config import GeneratorConfig, TrainConfig, config_hash, from_yaml, to_dict, to_yaml
from vdes_tune.errors import BadInputError
from vdes_tune.models.architectures import get_architecture
from vdes_tune.models.classifiers import build_classifier
from vdes_tune.generator_registry import build_generator
from vdes_tune.training.data import attach_vdes, load_split, loaders
from vdes_tune.training.engine import FitResult, Fitter, seed_everything
from vdes_tune.training.tasks import ClassificationTask
from vdes_tune.workspace import Workspace, read_manifest, write_json


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInputError("device 'cuda' requested but CUDA is not available")
    return torch.device("cuda" if name in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def _generator(cfg: TrainConfig) -> torch.nn.Module | None:
    arch = get_architecture(cfg.arch)
    if arch.generator is None or (cfg.vdes and not arch.end_to_end):
        return None  # no vdes channel, or one synthesised once and read from vdes/<name>
    if arch.end_to_end:
        # #5 trains it from scratch with the classifier, in the shape this run was given (U-Net width, depth).
        return build_generator(GeneratorConfig.shaped(arch.generator, to_dict(cfg)))
    if not cfg.generator_weights:
        raise BadInputError(f"architecture #{arch.number} {arch.name} needs a virtual DES: set vdes (a "
                            f"`vdes/<name>` set, see `vdes-tune generators synthesize`) or generator_weights "
                            f"(a pre-trained {arch.generator} state dict)")
    path = Path(cfg.generator_weights)
    if not path.is_file():
        raise BadInputError(f"{path}: generator weights file does not exist")
    # Weights from `generators train` sit beside the config that shaped them; bare weights take this run's shape.
    made = path.with_name("config.yaml")
    gcfg = from_yaml(GeneratorConfig, made) if made.is_file() else GeneratorConfig.shaped(arch.generator, to_dict(cfg))
    if gcfg.model != arch.generator:
        raise BadInputError(f"{path}: weights of a {gcfg.model} generator, but #{arch.number} {arch.name} "
                            f"needs a {arch.generator}")
    model = build_generator(gcfg)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


@dataclass
class ClassificationRun:
    """Everything one classification run trains with: the task, its loaders and what made them."""

    cfg: TrainConfig
    task: ClassificationTask
    loaders: dict[str, DataLoader]
    crops: dict[str, int]
    vdes_source: dict[str, Any] | None

    def fitter(self, keep_best_state: bool = True) -> Fitter:
        """A Fitter over this run's loaders, reseeding each epoch from the config's seed."""
        return Fitter(self.task, self.loaders["train"], self.loaders["val"], self.loaders.get("test"), self.cfg.epochs,
                      seed=self.cfg.seed, keep_best_state=keep_best_state)


SPLITS = ("train", "val", "test")
SEARCH_SPLITS = ("train", "val")  # a search chooses on validation and never reads test (paper 3.3)


def load_frames(cfg: TrainConfig, workspace: Workspace, splits: tuple[str, ...] = SPLITS) -> dict[str, pd.DataFrame]:
    """The split frames `cfg` trains on, with the synthesised vdes column where the architecture reads one."""
    arch = get_architecture(cfg.arch)
    # On a URI workspace this process reads its node's mirror, brought up to date first.
    frames = {s: load_split(workspace.pull(workspace.dataset.shards), s) for s in splits}
    if arch.generator is not None and not arch.end_to_end and cfg.vdes:
        vdes = workspace.pull(workspace.vdes(cfg.vdes))
        frames = {s: attach_vdes(f, vdes, s) for s, f in frames.items()}
    return frames


def prepare_classification(cfg: TrainConfig, work: Path | Workspace,
                           frames: dict[str, pd.DataFrame] | None = None,
                           device: torch.device | None = None) -> ClassificationRun:
    """Seed, load the splits (or use `frames`), build the models and the task of one run."""
    seed_everything(cfg.seed)
    workspace = work if isinstance(work, Workspace) else Workspace.at(work)
    arch = get_architecture(cfg.arch)
    from_shards = arch.generator is not None and not arch.end_to_end and bool(cfg.vdes)
    # vdes comes from its shards (#4/#6 with cfg.vdes) or is made from LE by the generator on the fly.
    sources = tuple(s for s in arch.needs if s != "vdes" or from_shards)
    if arch.end_to_end and cfg.recon_weight > 0 and "des" not in sources:
        sources += ("des",)
    frames = frames if frames is not None else load_frames(cfg, workspace)
    data = loaders(frames, sources, cfg.batch_size, cfg.augment, cfg.seed)
    classifier = build_classifier(cfg.classifier, dropout=cfg.dropout, weights=cfg.classifier_weights or None)
    task = ClassificationTask(arch, classifier, cfg.lr, device or pick_device(cfg.device), _generator(cfg),
                              cfg.recon_weight)
    vdes_source = None
    if from_shards:  # which generator run made the virtual DES this classifier saw
        made = read_manifest(workspace.vdes(cfg.vdes)) or {}
        vdes_source = {k: made.get(k) for k in ("name", "config_hash", "inputs", "inputs_hash")}
    return ClassificationRun(cfg, task, data, {k: len(v) for k, v in frames.items()}, vdes_source)


def summarise(run: ClassificationRun, result: FitResult) -> dict[str, Any]:
    """The JSON summary of a finished run: config, seed, best epoch, its val and test metrics, history."""
    cfg, arch = run.cfg, get_architecture(run.cfg.arch)
    summary = {
        "arch": arch.number, "arch_name": arch.name, "config": to_dict(cfg), "config_hash": config_hash(cfg),
        "seed": cfg.seed, "best_epoch": result.best_epoch, "val": result.best_val, "test": result.best_test,
        "history": result.history, "crops": run.crops,
    }
    if run.vdes_source is not None:
        summary["vdes_source"] = run.vdes_source
    return summary


def run_classification(cfg: TrainConfig, work: Path | Workspace, out: Path | None = None,
                       on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train `cfg.arch` on the train split, select on validation F1, report that epoch's val and test metrics."""
    run = prepare_classification(cfg, work)
    fitter = run.fitter()
    while not fitter.done:
        record = fitter.step()
        if on_epoch is not None:
            on_epoch(record)
    summary = summarise(run, fitter.result)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(to_yaml(cfg))
        write_json(out / "metrics.json", summary)
        torch.save(fitter.result.best_state, out / "best.pt")
    return summary
