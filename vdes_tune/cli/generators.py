"""`vdes-tune generators train|synthesize`: pre-train a LE -> DES generator, then write its virtual DES shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vdes_tune.cli import app
from vdes_tune.config import GeneratorConfig

generators_app = typer.Typer(help="LE -> DES generators: train (U-Net/PT, CycleGAN) and synthesize.",
                             no_args_is_help=True)
app.add_typer(generators_app, name="generators")


def _config(model: str, config: Optional[Path], overrides: dict) -> GeneratorConfig:
    from vdes_tune.config import read_yaml_mapping
    from vdes_tune.errors import BadInputError

    base = read_yaml_mapping(config) if config else {}
    if base.pop("model", model) != model:
        raise BadInputError(f"{config}: field 'model' is not {model!r}, the model this command trains")
    return GeneratorConfig.for_model(model, **{**base, **{k: v for k, v in overrides.items() if v is not None}})


@generators_app.command("train")
def train_generator(
    model: str = typer.Argument(..., help="unet (U-Net/PT, paired L1) or cyclegan."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) with dataset/shards."),
    name: Optional[str] = typer.Option(None, "--name", help="Output name under generators/ (default: the model)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML of GeneratorConfig fields."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Default: 30 (unet), 300 (cyclegan)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Default: 16 (unet), 8 (cyclegan)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default: 5e-4 (unet), 1e-5 (cyclegan)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    width: Optional[int] = typer.Option(None, "--width", help="U-Net first-layer width (default 32)."),
    depth: Optional[int] = typer.Option(None, "--depth", help="U-Net resolution levels (default 6)."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="U-Net dropout (default 0.2)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping on validation L1 (0: off)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    force: bool = typer.Option(False, "--force", help="Retrain even when the manifest matches."),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train on the train split, select on validation L1; write config, weights, metrics.json, samples.png."""
    from vdes_tune.stages import generators as stage
    from vdes_tune.workspace import Workspace

    cfg = _config(model, config, {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                                  "unet_width": width, "unet_depth": depth, "unet_dropout": dropout,
                                  "patience": patience, "device": device})

    def show(r: dict) -> None:
        if not as_json:
            v = r["val"]
            typer.echo(f"epoch {r['epoch']:3d}  loss {r['train_loss']:.4f}  val L1 {v['l1']:.4f} "
                       f"PSNR {v['psnr']:.2f} SSIM {v['ssim']:.3f}  {r['seconds']:.1f}s")

    summary = stage.train(cfg, Workspace.at(work), name, force, on_epoch=show)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
        return
    if summary["skipped"]:
        typer.echo(f"{summary['output']} is up to date (same config and dataset); --force retrains it")
    v, t = summary["val"], summary["test"]
    typer.echo(f"best epoch {summary['best_epoch']} (validation L1): val PSNR {v['psnr']:.2f} SSIM {v['ssim']:.3f} "
               f"MSE {v['mse']:.5f}; test PSNR {t['psnr']:.2f} SSIM {t['ssim']:.3f} MSE {t['mse']:.5f}; "
               f"written to {summary['output']}")


@generators_app.command("synthesize")
def synthesize(
    name: str = typer.Argument(..., help="A trained generator under generators/ (e.g. unet, cyclegan)."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Crops per actor call."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="Actor pool size (default: one per GPU, "
                                         "else one per CPU)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU actors when the cluster has GPUs), cpu, cuda."),
    force: bool = typer.Option(False, "--force", help="Rewrite even when the manifest matches."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster (auto, host:port, ray://...); "
                                          "default: a local Ray on 127.0.0.1."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", help="CPUs for the local Ray instance."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write vdes/<name>/split=*/ shards (crop_id, vdes) for all splits with Ray Data actors holding the model."""
    from dataclasses import asdict

    from vdes_tune.errors import BadInputError
    from vdes_tune.stages import generators as stage
    from vdes_tune.workspace import Workspace

    if device not in ("auto", "cpu", "cuda"):
        raise BadInputError(f"--device must be auto, cpu or cuda (got {device!r})")
    summary = stage.synthesize(name, Workspace.at(work), force, address, num_cpus, batch_size, actors, device)
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2))
        return
    state = "up to date" if summary.skipped else f"written in {summary.seconds:.1f}s"
    rows = ", ".join(f"{k} {v}" for k, v in summary.rows.items())
    typer.echo(f"{summary.output}: {state} ({rows} crops)")



