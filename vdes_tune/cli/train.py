"""`vdes-tune train`: one classification run of an architecture, for debugging and as the trial unit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from vdes_tune.cli.app import app
from vdes_tune.config import TrainConfig, from_dict, from_yaml, to_dict


@app.command()
def train(
    arch: int = typer.Option(..., "--arch", min=1, max=6, help="Architecture #1..#6."),
    work: Path = typer.Option(Path("vdes-work"), "--work", help="Workspace with dataset/shards."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML of TrainConfig fields."),
    classifier: Optional[str] = typer.Option(None, "--classifier", help="resnet18, resnet34 or regnety_016."),
    lr: Optional[float] = typer.Option(None, "--lr"),
    dropout: Optional[float] = typer.Option(None, "--dropout"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    vdes: Optional[str] = typer.Option(None, "--vdes", help="#4/#6: a vdes/<name> set (default: unet for #4, "
                                        "cyclegan for #6, unless --generator-weights is given)."),
    generator_weights: Optional[Path] = typer.Option(None, "--generator-weights",
                                                     help="#4/#6: generate the virtual DES on the fly instead."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Switch the paper's augmentation off."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default <work>/train/arch<N>-seed<S>)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train one architecture; print a per-epoch table; write config.yaml, metrics.json and best.pt."""
    from vdes_tune.models.architectures import get_architecture
    from vdes_tune.training.classify import run_classification

    base = to_dict(from_yaml(TrainConfig, config)) if config else {}
    overrides = {"arch": arch, "classifier": classifier, "lr": lr, "dropout": dropout, "epochs": epochs,
                 "batch_size": batch_size, "seed": seed, "vdes": vdes,
                 "generator_weights": str(generator_weights) if generator_weights else None}
    if no_augment:
        overrides["augment"] = False
    cfg = from_dict(TrainConfig, {**base, **{k: v for k, v in overrides.items() if v is not None}})
    chosen = get_architecture(cfg.arch)
    if chosen.generator and not chosen.end_to_end and not (cfg.vdes or cfg.generator_weights):
        cfg = replace(cfg, vdes=chosen.generator)  # the set `generators synthesize <model>` writes by default
    out = out or work / "train" / f"arch{cfg.arch}-seed{cfg.seed}"

    def show(r: dict) -> None:
        if not as_json:
            v, t = r["val"], r["test"]
            typer.echo(f"epoch {r['epoch']:3d}  loss {r.get('train_loss', float('nan')):.4f}  "
                       f"val acc {v['accuracy']:.3f} f1 {v['f1']:.3f} auc {v['roc_auc']:.3f}  "
                       f"test f1 {t.get('f1', float('nan')):.3f}  {r['seconds']:.1f}s")

    summary = run_classification(cfg, work, out, on_epoch=show)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    else:
        typer.echo(f"best epoch {summary['best_epoch']} (validation F1): val F1 {summary['val']['f1']:.4f}, "
                   f"test F1 {summary['test']['f1']:.4f}; written to {out}")
