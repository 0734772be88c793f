"""Patient-level, class-stratified, seeded train/val/test assignment of crops."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vdes_tune.config import SPLITS


def assign_patients(crops: pd.DataFrame, fractions: tuple[float, ...], seed: int) -> dict[int, str]:
    """Map each patient to a split so crop counts per class follow `fractions` as closely as patients allow."""
    if crops.empty:
        return {}
    counts = crops.pivot_table(index="patient_id", columns="label", values="crop_id", aggfunc="count",
                               fill_value=0).sort_index()
    patients = counts.index.to_numpy()
    vectors = counts.to_numpy(dtype=float)
    totals = vectors.sum(axis=0)
    targets = np.outer(np.asarray(fractions, float), totals)  # split x class
    rng = np.random.default_rng(seed)
    # Big patients first (they are the hard ones to place), ties broken by a seeded shuffle.
    order = sorted(rng.permutation(len(patients)), key=lambda i: -vectors[i].sum())
    current = np.zeros_like(targets)
    assignment: dict[int, str] = {}
    for i in order:
        best, best_cost = 0, np.inf
        for s in range(len(fractions)):
            trial = current.copy()
            trial[s] += vectors[i]
            # Squared shortfall/excess relative to each target, summed over splits and classes.
            cost = float((((trial - targets) / np.maximum(targets, 1.0)) ** 2).sum())
            if cost < best_cost - 1e-12:
                best, best_cost = s, cost
        current[best] += vectors[i]
        assignment[int(patients[i])] = SPLITS[best]
    return assignment


def split_record(assignment: dict[int, str], fractions: tuple[float, ...], seed: int) -> dict[str, object]:
    """The JSON-ready splits.json content: patient ids per split plus how they were made."""
    return {
        "seed": seed,
        "fractions": dict(zip(SPLITS, fractions)),
        "method": "patient-level greedy stratification on crop counts per class",
        "patients": {s: sorted(p for p, v in assignment.items() if v == s) for s in SPLITS},
    }
