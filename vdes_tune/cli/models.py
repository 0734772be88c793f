"""`vdes-tune models list|describe`: what the registry holds and how big each model is."""

from __future__ import annotations

import json
from typing import Optional

import typer

from vdes_tune.cli.app import app

models_app = typer.Typer(help="The model registry: generators and classifiers.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered models with their kind and default settings."""
    from vdes_tune.models import MODELS

    rows = [{"name": n, "kind": MODELS.get(n).kind, "defaults": MODELS.get(n).defaults} for n in MODELS.names()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["defaults"].items())
        typer.echo(f"{r['name']:<12} {r['kind']:<10} {settings}")


@models_app.command("describe")
def describe_model(
    name: str = typer.Argument(..., help="A registered model (see `models list`)."),
    input_size: int = typer.Option(224, "--input-size", min=16, help="Square input side in pixels."),
    width: Optional[int] = typer.Option(None, "--width", help="U-Net first-layer width."),
    depth: Optional[int] = typer.Option(None, "--depth", help="U-Net resolution levels."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout probability."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Batch size of the training-memory estimate."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Parameter counts (per sub-network), input and output shapes of one model."""
    from vdes_tune.models import MODELS, build_model, describe
    from vdes_tune.training.memory import GIB, estimate_module, load_calibration

    overrides = {k: v for k, v in {"width": width, "depth": depth, "dropout": dropout}.items() if v is not None}
    info = describe(name, input_size=input_size, **overrides)
    model = build_model(name, **overrides)
    if name == "cyclegan":
        model = model.g_le2des  # the estimate is per network; a CycleGAN step trains four of them
    cal = load_calibration()
    shape = (batch_size, MODELS.get(name).in_channels, input_size, input_size)
    info["training_memory_gb"] = {"batch_size": batch_size, "estimate": round(estimate_module(model, shape, cal) / GIB, 3),
                                  "calibration": cal.source.split(":")[0],
                                  "network": "g_le2des" if name == "cyclegan" else name}
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"{info['name']} ({info['kind']}): {info['config']}")
    for part, count in info["parameters"].items():
        typer.echo(f"  parameters {part:<10} {count:>13,}")
    typer.echo(f"  input {info['input_shape']} -> output {info['output_shape']} ({info['output']})")
    mem = info["training_memory_gb"]
    typer.echo(f"  training memory ({mem['network']}, Adam, batch {mem['batch_size']}): about {mem['estimate']:.2f} GiB "
               f"({mem['calibration']}; `vdes-tune plan` estimates whole trials)")
