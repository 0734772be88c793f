"""How much malignant-vs-non-malignant signal each modality of the synthetic phantom carries, without a CNN.

Synthesises a small phantom (or reads `--data RAW`, which must hold `synthetic_truth.csv`), ingests it on a
local 2-CPU Ray, and computes hand-made crop features (`vdes_tune.evaluation.probe`) of LE, LED and DES.
A standardised logistic regression gives the pooled out-of-fold ROC-AUC (5 folds grouped by patient) of each
modality and of LE+DES, over all crops and per lesion kind (each kind's crops, malignant vs not; and random
normal-tissue crops vs malignant crops). The "truth ceiling" row runs the same probe on the phantom's own
lesion parameters (lesion present, kind, and every numeric per-lesion truth column), i.e. what a perfect
reader of the drawn lesion could reach given the image-level labels. Targets on the overall AUCs:
LE >= 0.80, DES - LE >= +0.05, LE+DES <= 0.97.

    python benchmarks/phantom_signal.py [--patients 80] [--crop-size 96] [--seed 0] [--signal paper]
                                        [--data RAW] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vdes_tune.config import IngestConfig, SynthConfig
from vdes_tune.phantom.dataset import TRUTH_NAME, write_dataset
from vdes_tune.evaluation.probe import feature_table, probe_auc
from vdes_tune.runtime import ray_session
from vdes_tune.stages import ingest
from vdes_tune.training.data import load_split
from vdes_tune.workspace import Workspace

KINDS = ("mass", "calcification", "non_mass")
SUBSETS = ("overall", *KINDS, "normal vs malignant")
MODALITIES = ("LE", "LED", "DES", "LE+DES")
CEILING = "truth ceiling"
# Truth columns that are ids, pair-level geometry or the label itself; every other numeric column is a
# lesion parameter and goes into the ceiling (so new ones, e.g. `suspicion`, are picked up unasked).
NOT_LESION_PARAMS = {"patient_id", "tx", "ty", "le_height", "le_width", "des_height", "des_width", "birads",
                     "lesion_index", "malignant", "cx", "cy"}
MIN_MATCH_PX = 8.0


def synth_config(patients: int, seed: int, signal: str) -> tuple[SynthConfig, str]:
    """The phantom's config; `signal` only where SynthConfig has that field (returns a note when dropped)."""
    if "signal" in {f.name for f in dataclasses.fields(SynthConfig)}:
        return SynthConfig(patients=patients, size="small", seed=seed, signal=signal), ""
    note = "" if signal == "paper" else f"SynthConfig has no `signal` field: --signal {signal} ignored"
    return SynthConfig(patients=patients, size="small", seed=seed), note


def load_crops(work: Workspace) -> pd.DataFrame:
    """Every split's shard rows, with the crop centres of crops.parquet, in crop-id order."""
    shards = work.dataset.shards
    frame = pd.concat([load_split(shards, s) for s in ("train", "val", "test") if (shards / f"split={s}").is_dir()])
    centres = pd.read_parquet(work.dataset.crops, columns=["crop_id", "centre_x", "centre_y"])
    return frame.merge(centres, on="crop_id", how="left", validate="one_to_one").sort_values(
        "crop_id").reset_index(drop=True)


def attach_truth(frame: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`frame` plus `kind`, `lesion_malignant` and the parameters (`truth_*`) of the nearest truth lesion of the
    same pair; also the names of those parameters."""
    lesions = truth[truth["lesion_kind"].notna() & (truth["lesion_kind"].astype(str) != "")]
    params = [c for c in lesions.columns if c not in NOT_LESION_PARAMS
              and pd.api.types.is_numeric_dtype(lesions[c]) and lesions[c].notna().any()]
    by_pair = {pid: g for pid, g in lesions.groupby("pair_id")}
    kinds, malignant, values = [], [], []
    for row in frame.itertuples():
        cand = by_pair.get(row.pair_id)
        best = None
        if row.source != "random" and cand is not None:
            dist = np.hypot(cand["cx"].to_numpy() - row.centre_x, cand["cy"].to_numpy() - row.centre_y)
            reach = np.maximum(cand["radius"].to_numpy(), MIN_MATCH_PX)
            ok = np.flatnonzero(dist <= reach)
            if len(ok):
                best = cand.iloc[ok[np.argmin(dist[ok])]]
        kinds.append("normal" if best is None else str(best["lesion_kind"]))
        malignant.append(math.nan if best is None else float(best["malignant"]))
        values.append([0.0] * len(params) if best is None else [float(best[c]) for c in params])
    out = frame.assign(kind=kinds, lesion_malignant=malignant)
    out[[f"truth_{c}" for c in params]] = np.asarray(values, dtype=np.float64).reshape(len(frame), len(params))
    return out, params


def truth_features(frame: pd.DataFrame, params: list[str]) -> np.ndarray:
    """Ceiling inputs: lesion present, kind one-hot and the lesion parameters (0 for normal crops)."""
    present = (frame["kind"] != "normal").to_numpy(float)[:, None]
    onehot = np.stack([(frame["kind"] == k).to_numpy(float) for k in KINDS], axis=1)
    return np.hstack([present, onehot, frame[[f"truth_{c}" for c in params]].to_numpy(float)])


def subset_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows of each table column."""
    malignant = frame["label"].to_numpy() == 1
    masks = {"overall": np.ones(len(frame), bool)}
    for kind in KINDS:
        masks[kind] = (frame["kind"] == kind).to_numpy()
    masks["normal vs malignant"] = (frame["source"] == "random").to_numpy() | (
        malignant & (frame["source"] != "random").to_numpy())
    return masks


def class_mix(frame: pd.DataFrame) -> dict:
    """Crop, patient and malignancy counts, overall and per lesion kind."""
    mix = {"crops": len(frame), "patients_with_crops": int(frame["patient_id"].nunique()),
           "malignant_pct": round(100 * float(frame["label"].mean()), 1),
           "by_kind": {k: {"crops": int((frame["kind"] == k).sum()),
                           "malignant": int(((frame["kind"] == k) & (frame["label"] == 1)).sum())}
                       for k in (*KINDS, "normal")}}
    # A benign lesion in a malignant breast inherits the image label 1: label noise no modality can explain.
    matched = frame["kind"] != "normal"
    mix["label_differs_from_lesion_truth"] = int((matched & (frame["label"] != frame["lesion_malignant"])).sum())
    mix["lesion_crops_unmatched"] = int(((frame["source"] != "random") & ~matched).sum())
    return mix


def build_frame(args: argparse.Namespace, tmp: Path, notes: list[str],
                timings: dict[str, float]) -> tuple[pd.DataFrame, list[str]]:
    """Synthesise (unless --data) and ingest; the crops with their truth and the ceiling's parameter names."""
    raw = args.data
    if raw is None:
        cfg, note = synth_config(args.patients, args.seed, args.signal)
        notes += [note] if note else []
        raw = tmp / "raw"
        t0 = time.perf_counter()
        write_dataset(cfg, raw)
        timings["synth_s"] = time.perf_counter() - t0
    if not (raw / TRUTH_NAME).is_file():
        print(f"{raw / TRUTH_NAME}: missing; the probe needs the phantom's truth sidecar", file=sys.stderr)
        raise SystemExit(2)
    work = Workspace.at(tmp / "work")
    t0 = time.perf_counter()
    with ray_session(num_cpus=2):
        ingest.run(IngestConfig(crop_size=args.crop_size, seed=args.seed), work, raw)
    timings["ingest_s"] = time.perf_counter() - t0
    return attach_truth(load_crops(work), pd.read_csv(raw / TRUTH_NAME))


def probe_all(frame: pd.DataFrame, params: list[str], seed: int, timings: dict[str, float]) -> dict[str, dict]:
    """probe_auc result per (modality or ceiling, subset)."""
    t0 = time.perf_counter()
    feats = {m: feature_table(frame, m.lower()) for m in ("LE", "LED", "DES")}
    timings["features_s"] = time.perf_counter() - t0
    timings["features_ms_per_crop_image"] = 1000 * timings["features_s"] / max(1, 3 * len(frame))
    feats["LE+DES"] = np.hstack([feats["LE"], feats["DES"]])
    feats[CEILING] = truth_features(frame, params)
    t0 = time.perf_counter()
    labels, groups = frame["label"].to_numpy(), frame["patient_id"].to_numpy()
    masks = subset_masks(frame)
    cells = {name: {s: probe_auc(feats[name][m], labels[m], groups[m], folds=5, seed=seed) for s, m in masks.items()}
             for name in (*MODALITIES, CEILING)}
    timings["probe_s"] = time.perf_counter() - t0
    return cells


def _cell(res: dict) -> str:
    auc = "n/a" if math.isnan(res["auc"]) else f"{res['auc']:.3f}"
    return f"{auc} ({res['positives']}/{res['n']})"


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def main() -> None:
    """Build the crops, probe every modality and subset, print the table and targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signal", default="paper", choices=["paper", "null", "des-only"])
    parser.add_argument("--data", type=Path, help="an existing raw dataset (with synthetic_truth.csv) to use")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    notes: list[str] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        frame, params = build_frame(args, Path(tmp), notes, timings)
    cells = probe_all(frame, params, args.seed, timings)
    mix = class_mix(frame)
    overall = {m: cells[m]["overall"]["auc"] for m in (*MODALITIES, CEILING)}
    targets = {"LE >= 0.80": overall["LE"] >= 0.80, "DES - LE >= +0.05": overall["DES"] - overall["LE"] >= 0.05,
               "LE+DES <= 0.97": overall["LE+DES"] <= 0.97}
    if mix["lesion_crops_unmatched"]:
        notes.append(f"{mix['lesion_crops_unmatched']} lesion crop(s) matched no truth lesion (kind 'normal')")
    # The fold and class problems depend on the subset's labels only, so one note per subset covers every row.
    notes += sorted({f"{s}: {cells[n][s]['reason']}" for n in cells for s in SUBSETS if cells[n][s]["reason"]})

    source = f"--data {args.data}" if args.data else f"{args.patients} patients synthesised, signal {args.signal}"
    print(f"Phantom signal probe: {source}; {mix['patients_with_crops']} patients with crops, {args.crop_size} px, "
          f"seed {args.seed}. Pooled out-of-fold ROC-AUC, 5 folds grouped by patient; cell: AUC (malignant/n)")
    print()
    print("| modality | " + " | ".join(SUBSETS) + " |")
    print("|---|" + "---|" * len(SUBSETS))
    for name in (*MODALITIES, CEILING):
        print(f"| {name} | " + " | ".join(_cell(cells[name][s]) for s in SUBSETS) + " |")
    print()
    kinds = ", ".join(f"{k} {v['crops']} ({v['malignant']} malignant)" for k, v in mix["by_kind"].items())
    print(f"Class mix: {mix['crops']} crops, {mix['malignant_pct']}% malignant; {kinds}; "
          f"{mix['label_differs_from_lesion_truth']} lesion crop(s) whose image label differs from the lesion's own")
    print("Targets: " + "; ".join(f"{t} {'met' if ok else 'MISSED'}" for t, ok in targets.items())
          + f" (LE {overall['LE']:.3f}, DES {overall['DES']:.3f}, LE+DES {overall['LE+DES']:.3f})")
    print("Ceiling inputs: lesion present, kind one-hot, " + ", ".join(params))
    print("Timings: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    for note in notes:
        print(f"Note: {note}")
    if args.json:
        record = {"args": vars(args), "class_mix": mix, "cells": cells, "ceiling_params": params,
                  "targets": targets, "timings": timings, "notes": notes}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_safe(record), indent=2))


if __name__ == "__main__":
    main()
