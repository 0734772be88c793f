"""`vdes-tune generators train|synthesize|apply|export`: pre-train a LE -> DES generator, write its virtual DES
shards, run it on new images, export it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from vdes_tune.cli.app import app
from vdes_tune.cli.status import verify_option

if TYPE_CHECKING:
    from vdes_tune.stages.generators import GeneratorJob

generators_app = typer.Typer(help="LE -> DES generators: train (U-Net/PT, CycleGAN, Pix2Pix), synthesize, "
                             "apply to new images, export.", no_args_is_help=True)
app.add_typer(generators_app, name="generators")


def _job(model: str, name: Optional[str], config: Optional[Path], overrides: dict) -> "GeneratorJob":
    """The generator `generators train` trains, read as a pipeline's generators stage reads one entry."""
    from vdes_tune.config import read_yaml_mapping
    from vdes_tune.errors import BadInputError
    from vdes_tune.stages.generators import entry

    base = read_yaml_mapping(config) if config else {}
    if base.pop("model", model) != model:
        raise BadInputError(f"{config}: field 'model' is not {model!r}, the model this command trains")
    fields = {k: v for k, v in overrides.items() if v is not None}
    return entry({**base, **fields, "model": model, "name": name or base.get("name") or model, "synthesize": False})


@generators_app.command("train")
def train_generator(
    model: str = typer.Argument(..., help="unet (U-Net/PT, paired L1), cyclegan or pix2pix (U-Net + PatchGAN)."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) with dataset/shards."),
    name: Optional[str] = typer.Option(None, "--name", help="Output name under generators/ (default: the model)."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML of GeneratorConfig fields."),
    epochs: Optional[int] = typer.Option(None, "--epochs",
                                         help="Default: 30 (unet), 300 (cyclegan), 200 (pix2pix)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size",
                                             help="Default: 16 (unet), 8 (cyclegan), 1 (pix2pix)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default: 5e-4 (unet), 1e-5 (cyclegan), 2e-4 (pix2pix)."),
    seed: Optional[int] = typer.Option(None, "--seed"),
    width: Optional[int] = typer.Option(None, "--width", help="U-Net first-layer width (default 32; pix2pix 64)."),
    depth: Optional[int] = typer.Option(None, "--depth", help="U-Net resolution levels (default 6)."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="U-Net dropout (default 0.2; pix2pix 0.5)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Early stopping on validation L1 (0: off)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    force: bool = typer.Option(False, "--force", help="Retrain even when the manifest matches."),
    verify: bool = verify_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train on the train split, select on validation L1; write config, weights, metrics.json, samples.png."""
    from vdes_tune.stages import generators as stage
    from vdes_tune.workspace import Workspace

    job = _job(model, name, config, {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                                  "unet_width": width, "unet_depth": depth, "unet_dropout": dropout,
                                  "patience": patience, "device": device})

    def show(r: dict) -> None:
        if not as_json:
            v = r["val"]
            typer.echo(f"epoch {r['epoch']:3d}  loss {r['train_loss']:.4f}  val L1 {v['l1']:.4f} "
                       f"PSNR {v['psnr']:.2f} SSIM {v['ssim']:.3f}  {r['seconds']:.1f}s")

    summary = stage.train(job.config, Workspace.at(work), job.name, force, on_epoch=show, verify=verify)
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
    verify: bool = verify_option(),
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
    summary = stage.synthesize(name, Workspace.at(work), force, address, num_cpus, batch_size, actors, device,
                               verify)
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2))
        return
    state = "up to date" if summary.skipped else f"written in {summary.seconds:.1f}s"
    rows = ", ".join(f"{k} {v}" for k, v in summary.rows.items())
    typer.echo(f"{summary.output}: {state} ({rows} crops)")


@generators_app.command("apply")
def apply(
    name: str = typer.Argument(..., help="A trained generator under generators/ (e.g. unet, cyclegan)."),
    inputs: list[Path] = typer.Argument(..., help="LE images (JPEG, PNG, 16-bit PNG, DICOM) or folders of them."),
    out: Path = typer.Option(..., "--out", help="Output folder; folder inputs are mirrored inside it."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) holding generators/."),
    tile: Optional[int] = typer.Option(None, "--tile", min=0, help="Tile side in px (0: whole image). Default: "
                                       "the training crop for InstanceNorm generators (CycleGAN), else 1024."),
    overlap: Optional[int] = typer.Option(None, "--overlap", min=0, help="Overlap of tiles in px (default tile/4)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Tiles per forward pass."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that exist already."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Virtual DES for new LE images: a PNG each (16-bit for 16-bit/DICOM input), a DICOM for DICOM input, and
    OUT/provenance.json; unreadable inputs are skipped and listed (exit 2 only when nothing was written)."""
    from dataclasses import asdict

    from vdes_tune.inference.apply import apply_generator
    from vdes_tune.workspace import Workspace

    summary = apply_generator(Workspace.at(work), name, inputs, out, tile, overlap, device, batch_size,
                              overwrite, progress=not quiet)
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2))
        return
    tiling = f"{summary.tile}-px tiles, overlap {summary.overlap}" if summary.tile else "whole images"
    if summary.tile and summary.whole_up_to:
        tiling = f"whole images up to {summary.whole_up_to / 1e6:.1f} Mpx, else {tiling}"
    typer.echo(f"{summary.written} virtual DES written to {summary.out} ({tiling}, {summary.device}, "
               f"{summary.seconds:.1f}s); {len(summary.skipped)} skipped; provenance: {summary.provenance}")


@generators_app.command("export")
def export(
    name: str = typer.Argument(..., help="A trained generator under generators/."),
    fmt: str = typer.Option(..., "--format", help="torchscript or onnx (onnx needs the extra vdes-tune[onnx])."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default ./NAME.torchscript.pt or "
                                       "./NAME.onnx); its contract goes to FILE.json."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI) holding generators/."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing export."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """The LE -> DES network for other runtimes: any N x 1 x H x W in [0, 1] in, the same size out."""
    from dataclasses import asdict

    from vdes_tune.inference.export import export_generator
    from vdes_tune.workspace import Workspace

    summary = export_generator(Workspace.at(work), name, fmt, out, overwrite)
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2))
        return
    typer.echo(f"{summary.format} export written to {summary.file} (contract: {summary.sidecar})")
