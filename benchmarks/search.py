"""Optuna TPE with ASHA against the full grid of the same space, in one run, on the synthetic data.

Reports the best validation F1 each reaches (mean over repeat seeds, with the grid best's std) and
the seed-epochs each spends. Goal: TPE+ASHA within one std of the grid's best for at most a third
of its epochs. One run of each, on noise as large as the differences: `benchmarks/curves.py replay`
is the measurement that says how often a strategy finds the best (docs/benchmarks.md).

    python benchmarks/search.py [--patients 30] [--crop-size 96] [--epochs 6] [--repeats 2] [--samples 4]
                                [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from vdes_tune.config import IngestConfig, SynthConfig
from vdes_tune.phantom.dataset import write_dataset
from vdes_tune.runtime import ray_session
from vdes_tune.search.export import leaderboard, load_experiment
from vdes_tune.search.runner import SearchOptions, run_search
from vdes_tune.search.space import load_space
from vdes_tune.stages import ingest
from vdes_tune.workspace import Workspace


def _space(path: Path, algorithm: str, args: argparse.Namespace) -> Path:
    data = {
        "name": path.stem, "arch": 1, "metric": "val_f1", "mode": "max", "repeats": args.repeats,
        "algorithm": algorithm, "seed": 0,
        "fixed": {"train.epochs": args.epochs, "train.batch_size": args.batch_size, "train.dropout": 0.2},
        "parameters": {"train.classifier": {"choice": ["resnet18", "resnet34"]},
                       "train.lr": {"choice": [1.0e-3, 5.0e-4, 1.0e-4, 5.0e-5]}},
    }
    if algorithm != "grid":
        data.update({"num_samples": args.samples, "scheduler": "asha",
                     "asha": {"grace_period": 1, "reduction_factor": 3}})
    path.write_text(yaml.safe_dump(data))
    return path


def _spent(board: pd.DataFrame) -> int:
    """Seed-epochs trained, over every trial of every point."""
    return int(board["seed_epochs"].sum())


def main() -> None:
    """Run both searches and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=30)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ray_session(num_cpus=2):
        root = Path(tmp)
        write_dataset(SynthConfig(patients=args.patients, size="small", seed=3), root / "raw")
        ingest.run(IngestConfig(crop_size=args.crop_size), Workspace.at(root / "work"), root / "raw")
        rows = {}
        for algorithm in ("grid", "optuna-tpe"):
            space = load_space(_space(root / f"bench_{algorithm.replace('-', '_')}.yaml", algorithm, args))
            start = time.perf_counter()
            summary = run_search(space, root / "work", SearchOptions())
            board = leaderboard(load_experiment(summary["path"]))
            best = board.iloc[0]
            rows[algorithm] = {"trials": len(board), "best_val_f1": float(best["val_f1"]),
                               "best_val_f1_std": float(best["val_f1_std"]), "best": {
                                   "classifier": best["train.classifier"], "lr": float(best["train.lr"])},
                               "seed_epochs": _spent(board), "seconds": time.perf_counter() - start,
                               "board": [{"classifier": r["train.classifier"], "lr": float(r["train.lr"]),
                                          "val_f1": float(r["val_f1"]), "val_f1_std": float(r["val_f1_std"]),
                                          "epochs": int(r["epochs"])} for _, r in board.iterrows()]}
    grid, tpe = rows["grid"], rows["optuna-tpe"]
    # A search is only worth comparing on a landscape that is not flat: the grid's best must beat its worst
    # by more than the best's own std over seeds.
    worst = min(r["val_f1"] for r in grid["board"])
    landscape = grid["best_val_f1"] - worst > grid["best_val_f1_std"]
    for name, r in rows.items():
        print(f"{name} trials: " + "; ".join(f"{t['classifier']} lr={t['lr']:g} F1 {t['val_f1']:.3f} "
                                             f"({t['val_f1_std']:.3f}) {t['epochs']} ep" for t in r["board"]))
    print(f"grid landscape: best {grid['best_val_f1']:.4f} - worst {worst:.4f} = {grid['best_val_f1'] - worst:.4f} "
          f"vs best's std {grid['best_val_f1_std']:.4f}: {'not flat' if landscape else 'FLAT'}")
    within = tpe["best_val_f1"] >= grid["best_val_f1"] - grid["best_val_f1_std"]
    ratio = tpe["seed_epochs"] / grid["seed_epochs"]
    print(f"{'search':<12} {'trials':>6} {'best val F1':>12} {'(std)':>7} {'seed-epochs':>11} {'seconds':>8}  best")
    for name, r in rows.items():
        print(f"{name:<12} {r['trials']:>6} {r['best_val_f1']:>12.4f} {r['best_val_f1_std']:>7.4f} "
              f"{r['seed_epochs']:>11} {r['seconds']:>8.1f}  {r['best']['classifier']} lr={r['best']['lr']:g}")
    print(f"TPE+ASHA within one grid std of the grid's best: {within}; epochs ratio {ratio:.2f} (goal <= 0.33)")
    print(json.dumps({"args": vars(args), **rows, "within_one_std": within, "epoch_ratio": ratio,
                      "landscape_not_flat": landscape}))


if __name__ == "__main__":
    main()
