"""One generator training run (any registered generator): data, task, fit, image metrics, weights, sample montage."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from vdes_tune.config import GeneratorConfig, config_hash, from_dict, to_dict, to_yaml
from vdes_tune.generator_registry import GENERATORS, build_generator
from vdes_tune.training.classify import pick_device
from vdes_tune.training.data import CropDataset, load_split, loaders
from vdes_tune.training.engine import Fitter, prepare_device, rng_state, seed_everything, set_rng_state, to_device
from vdes_tune.training.tasks import autocast_for
from vdes_tune.remote import read_bytes
from vdes_tune.workspace import temp_path, write_json

WEIGHTS = "generator.pt"  # state dict of the LE -> DES network: what #4/#6 and `synthesize` load
CHECKPOINT = "checkpoint.pt"  # in a run's resume folder: the last finished epoch


__all__ = ["WEIGHTS", "Synthesizer", "build_generator", "montage", "run_generator_training"]


# The training tasks of the generator plug-ins (generator_registry.py names them), one per model.

def _betas(cfg: GeneratorConfig) -> tuple[float, float]:
    return (cfg.betas[0], cfg.betas[1])


def translation_task(cfg: GeneratorConfig, device: torch.device) -> Any:
    """U-Net/PT: the U-Net trained alone on the paired loss to the real DES."""
    from vdes_tune.models.generators import unet
    from vdes_tune.training.tasks import TranslationTask

    return TranslationTask(unet(cfg), cfg.lr, device, cfg.loss, _betas(cfg))


def cyclegan_task(cfg: GeneratorConfig, device: torch.device) -> Any:
    """The CycleGAN of paper 3.1 (eq. 5) with its image pools."""
    from vdes_tune.models.cyclegan import CycleGAN
    from vdes_tune.training.gan import CycleGANTask

    model = CycleGAN(cfg.features, cfg.blocks, cfg.disc_features)
    return CycleGANTask(model, cfg.lr, device, _betas(cfg), cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size,
                        cfg.seed)


def pix2pix_task(cfg: GeneratorConfig, device: torch.device) -> Any:
    """Pix2Pix: a U-Net and a conditional PatchGAN."""
    from vdes_tune.models.cyclegan import PatchDiscriminator
    from vdes_tune.models.generators import unet
    from vdes_tune.training.gan import Pix2PixTask

    # Conditional PatchGAN: it judges (LE, DES) pairs, so it sees two channels; BatchNorm as in Isola et al.
    disc = PatchDiscriminator(2, cfg.disc_features, cfg.disc_layers, norm="batch")
    return Pix2PixTask(unet(cfg), disc, cfg.lr, device, _betas(cfg), cfg.lambda_l1, cfg.gan_loss)


@torch.no_grad()
def montage(generator: nn.Module, dataset: CropDataset, count: int) -> np.ndarray:
    """uint8 grid, one row per crop: LE | real DES | virtual DES | |virtual - real|."""
    generator.eval().cpu()
    rows = []
    for i in range(min(count, len(dataset))):
        images, _ = dataset[i]
        le, des = images["le"][None], images["des"][None]
        vdes = generator(le).clamp(0, 1)
        row = torch.cat([le, des, vdes, (vdes - des).abs()], dim=3)[0, 0]
        rows.append((row.numpy() * 255).round().astype(np.uint8))
    return np.concatenate(rows, axis=0)


def save_checkpoint(folder: Path, tag: str, fitter: Fitter, train_loader: Any) -> None:
    """The state after the fitter's last finished epoch (task, best epoch's weights, every RNG), replacing the
    previous one in one rename: a kill leaves either the old checkpoint or the new, never half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"tag": tag, "epoch": fitter.epoch, "progress": json.dumps(fitter.progress(), default=float),
             "task": fitter.task.training_state(), "best_state": fitter.result.best_state,
             "rng": rng_state(train_loader)}
    tmp = temp_path(folder / CHECKPOINT)
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT)


def resume_checkpoint(folder: Path, tag: str, fitter: Fitter, train_loader: Any) -> int:
    """Continue `fitter` from the folder's checkpoint when it is of this run (same `tag`); the epochs it had
    finished (0: none, or another config's or dataset's, or unreadable)."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable: trust nothing in it, start over
        return 0
    if state.get("tag") != tag:
        return 0
    fitter.restore(json.loads(state["progress"]), state["task"])
    fitter.result.best_state = state["best_state"]
    set_rng_state(state["rng"], train_loader)
    return fitter.epoch


def run_generator_training(cfg: GeneratorConfig, shards: Path, out: Path,
                           on_epoch: Callable[[dict[str, Any]], None] | None = None,
                           resume: Path | None = None, tag: str = "") -> dict[str, Any]:
    """Train on the train split, select on validation L1, write config, weights, metrics.json and samples.png.
    With `resume`, checkpoint every epoch there and continue from its checkpoint of the same `tag`."""
    import cv2

    seed_everything(cfg.seed)
    frames = {s: load_split(shards, s) for s in ("train", "val", "test")}
    sources = ("le", "des")
    data = loaders(frames, sources, cfg.batch_size, cfg.augment, cfg.seed)
    task = GENERATORS.get(cfg.model).build_task(cfg, pick_device(cfg.device))
    fitter = Fitter(task, data["train"], data["val"], data["test"], cfg.epochs, cfg.patience)
    resumed = resume_checkpoint(resume, tag, fitter, data["train"]) if resume is not None else 0
    while not fitter.done:
        record = fitter.step()
        if resume is not None:
            save_checkpoint(resume, tag, fitter, data["train"])
        if on_epoch is not None:
            on_epoch(record)
    result = fitter.result

    out.mkdir(parents=True, exist_ok=True)
    state = {k: {n: t.cpu() for n, t in v.items()} for k, v in result.best_state.items()}
    torch.save(state["generator"], out / WEIGHTS)
    for part, weights in state.items():  # the rest of a GAN (cyclegan.pt, discriminator.pt), to train on from
        if part != "generator":
            torch.save(weights, out / f"{part}.pt")
    generator = build_generator(cfg)
    generator.load_state_dict(state["generator"])
    cv2.imwrite(str(out / "samples.png"), montage(generator, data["val"].dataset, cfg.samples))
    (out / "config.yaml").write_text(to_yaml(cfg))
    summary = {
        "model": cfg.model, "config": to_dict(cfg), "config_hash": config_hash(cfg), "seed": cfg.seed,
        "best_epoch": result.best_epoch, "epochs_run": len(result.history), "stopped_early": result.stopped_early,
        "resumed_from_epoch": resumed,
        "selection": "lowest validation L1 of the virtual DES to the real DES",
        "val": result.best_val, "test": result.best_test, "history": result.history,
        "crops": {k: len(v) for k, v in frames.items()},
    }
    write_json(out / "metrics.json", summary)
    return summary


class Synthesizer:
    """Holds one trained generator and turns a batch of shard rows into virtual DES rows (a Ray Data actor)."""

    def __init__(self, weights: str, cfg: dict[str, Any], device: str = "cpu", threads: int = 1) -> None:
        torch.set_num_threads(threads)  # one actor per CPU: torch's own threads would oversubscribe it
        self.device = torch.device(device)
        self.model = build_generator(from_dict(GeneratorConfig, cfg))
        # A path or URI: the actor may run on a node that cannot see the driver's disk.
        state = torch.load(io.BytesIO(read_bytes(weights)), map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()
        prepare_device(self.device, self.model)

    @torch.no_grad()
    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Rows with crop_id, height, width, le -> the same rows with vdes (uint8 bytes) in place of le."""
        if batch.empty:
            return batch.drop(columns=["le"]).assign(vdes=[])
        h, w = int(batch["height"].iloc[0]), int(batch["width"].iloc[0])
        le = np.stack([np.frombuffer(b, np.uint8).reshape(h, w) for b in batch["le"]])
        x = to_device(torch.from_numpy(le)[:, None].float() / 255.0, self.device)
        with autocast_for(self.device):
            vdes = self.model(x).float()
        # Stored like the real DES: uint8, so #4/#6 see the same quantisation as #3.
        images = (vdes.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].cpu().numpy()
        # Other columns (the split, say) pass through untouched.
        return batch.drop(columns=["le"]).assign(vdes=[img.tobytes() for img in images])
