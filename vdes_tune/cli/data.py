"""Data commands: `synth` writes a phantom dataset, `ingest` turns a raw dataset into shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vdes_tune.cli.app import app
from vdes_tune.cli.status import verify_option
from vdes_tune.config import SynthConfig, to_dict


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to create (must not exist or be empty)."),
    patients: int = typer.Option(20, "--patients", min=1, help="Number of patients."),
    size: str = typer.Option("small", "--size", help="Image size: small (tests, demo) or full (about 2355x1315)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same bytes."),
    quirks: bool = typer.Option(False, "--quirks", help="Emit the real dataset's naming quirks."),
    signal: str = typer.Option("paper", "--signal",
                               help="How pathology shows in the pixels: paper (LE morphology + DES enhancement, "
                                    "the default), null (labels independent of every pixel), des-only."),
    image_format: str = typer.Option("jpeg", "--format",
                                     help="jpeg: the CDD-CESM layout (default); dicom: CESM DICOM files (GE "
                                          "SenoBright tags) plus labels.csv, same pixels and truth."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Write a synthetic dataset in exactly the CDD-CESM layout (or as DICOM), plus synthetic_truth.csv."""
    from vdes_tune.phantom.dataset import write_dataset

    if size not in ("small", "full"):
        raise typer.BadParameter(f"--size must be 'small' or 'full', got {size!r}")
    if image_format not in ("jpeg", "dicom"):
        raise typer.BadParameter(f"--format must be 'jpeg' or 'dicom', got {image_format!r}")
    cfg = SynthConfig(patients=patients, size=size, seed=seed, quirks=quirks, signal=signal,  # type: ignore[arg-type]
                      format=image_format)  # type: ignore[arg-type]
    with Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=as_json, transient=True) as bar:
        task = bar.add_task("pairs", total=None)
        summary = write_dataset(cfg, out, progress=lambda n: bar.advance(task, n))
    if as_json:
        typer.echo(json.dumps({"out": str(summary.out), "patients": summary.patients, "pairs": summary.pairs,
                               "images": summary.images, "lesions": summary.lesions, "config": to_dict(cfg)}))
    else:
        typer.echo(f"wrote {summary.pairs} LE/DES pairs of {summary.patients} patients "
                   f"({summary.lesions} lesions) to {summary.out}")


@app.command()
def ingest(
    data: str = typer.Option(..., "--data", help="Raw dataset: the CDD-CESM layout, or a CESM DICOM folder with "
                             "labels.csv at its top (folder or URI)."),
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI); writes <work>/dataset."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML of ingest settings (IngestConfig fields)."),
    registration: Optional[str] = typer.Option(None, "--registration", help="two-level (paper) or exhaustive."),
    crop_size: Optional[int] = typer.Option(None, "--crop-size", help="Crop side in pixels (default 224)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of splits and normal-crop positions."),
    strict: bool = typer.Option(False, "--strict", help="Exit 2 on any bad input instead of skipping it."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the manifest matches."),
    verify: bool = verify_option(),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster (auto, host:port, ray://...); "
                                          "default: a local Ray on 127.0.0.1."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", help="CPUs for the local Ray instance."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Register, label, crop, denoise and split a raw dataset into Parquet shards (Ray Data)."""
    from vdes_tune.config import read_yaml_mapping
    from vdes_tune.stages import Context, run_stage
    from vdes_tune.workspace import Workspace

    body = read_yaml_mapping(config) if config else {}
    body.update({k: v for k, v in {"registration": registration, "crop_size": crop_size, "seed": seed}.items()
                 if v is not None})
    if strict:
        body["strict"] = True
    ctx = Context(Workspace.at(work), data, address=address, num_cpus=num_cpus, verify=verify, force=force)
    summary = run_stage("ingest", body, ctx)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if summary["skipped"]:
        typer.echo(f"{summary['output']} is up to date (same config and inputs); --force rebuilds it")
    typer.echo(f"pairs: {summary['pairs_found']} found, {summary['pairs_ingested']} ingested; crops: "
               f"{summary['crops']}; rejected: {summary['rejected_bad_input']} bad input, "
               f"{summary['rejected_excluded']} excluded/skipped; registration optimum on the search boundary: "
               f"{summary['boundary_pairs']}")
    for reason, count in summary["rejected_reasons"].items():
        typer.echo(f"  {count:5d}  {reason}")
    import pandas as pd

    from vdes_tune.data.qa import table_markdown

    typer.echo("\nTable 1 (crops per split and class):\n" + table_markdown(pd.DataFrame(summary["table1"])))
    typer.echo(f"written to {summary['output']} (see rejected.csv, qa/)")
