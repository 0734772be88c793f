"""Calibration of the malignant probability on the test split: expected calibration error (ECE) and the
reliability diagram's bins, per architecture (ECE per repeat, the diagram over all repeats pooled)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vdes_tune.evaluation.stats import mean_ci


def bin_index(prob: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each probability on [0, 1]; an edge value falls in the lower bin (as scikit-learn's
    calibration_curve), 1.0 in the last."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], np.asarray(prob, float), side="left")


def reliability(labels: np.ndarray, prob: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """One row per non-empty bin: its range, crop count, mean predicted probability and observed malignant rate."""
    y, p = np.asarray(labels, float), np.asarray(prob, float)
    idx = bin_index(p, bins)
    count = np.bincount(idx, minlength=bins)
    predicted = np.bincount(idx, weights=p, minlength=bins)
    observed = np.bincount(idx, weights=y, minlength=bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    keep = count > 0
    return pd.DataFrame({"bin": np.arange(bins)[keep], "low": edges[:-1][keep], "high": edges[1:][keep],
                         "count": count[keep], "mean_predicted": predicted[keep] / count[keep],
                         "fraction_malignant": observed[keep] / count[keep]})


def ece(labels: np.ndarray, prob: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (bin share) x |observed malignant rate - mean probability|."""
    table = reliability(labels, prob, bins)
    if table.empty:
        return float("nan")
    return float((table["count"] / table["count"].sum() * (table["fraction_malignant"]
                                                            - table["mean_predicted"]).abs()).sum())


def calibration_table(predictions: pd.DataFrame, bins: int = 10, names: dict[int, str] | None = None,
                      split: str = "test") -> pd.DataFrame:
    """Per architecture: ECE mean (std) [95% CI] over repeats, pooled ECE, mean probability and malignant rate."""
    part = predictions[predictions["split"] == split]
    rows: list[dict[str, Any]] = []
    for arch, group in part.groupby("arch", sort=True):
        per_repeat = [ece(g["label"], g["score"], bins) for _, g in group.groupby("repeat")]
        s = mean_ci(per_repeat)
        rows.append({"arch": int(arch), "architecture": (names or {}).get(int(arch), f"#{int(arch)}"),
                     "repeats": s["n"], "ece_mean": s["mean"], "ece_std": s["std"], "ece_ci_low": s["ci_low"],
                     "ece_ci_high": s["ci_high"], "ece_pooled": ece(group["label"], group["score"], bins),
                     "mean_probability": float(group["score"].mean()),
                     "fraction_malignant": float(group["label"].mean()), "crops": int(len(group))})
    return pd.DataFrame(rows)


def reliability_curves(predictions: pd.DataFrame, bins: int = 10, split: str = "test") -> dict[int, pd.DataFrame]:
    """The pooled reliability bins of each architecture, for the diagram."""
    part = predictions[predictions["split"] == split]
    return {int(a): reliability(g["label"], g["score"], bins) for a, g in part.groupby("arch", sort=True)}
