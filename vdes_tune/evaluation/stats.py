"""Statistics of the repeats: mean, std and t confidence intervals per architecture (Table 3), and
paired Wilcoxon signed-rank tests across repeats with effect sizes and Holm-adjusted p-values."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

CONFIDENCE = 0.95


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """n, mean, sample std (ddof=1) and the two-sided t interval of the mean (NaN ends when n < 2)."""
    from scipy import stats

    x = np.asarray([v for v in values if v == v], float)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def table3(results: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "f1", "macro_f1", "roc_auc"),
           splits: tuple[str, ...] = ("val", "test")) -> pd.DataFrame:
    """One row per architecture: repeats, then mean, std and 95% CI of each split's metrics."""
    rows = []
    for arch, part in results.groupby("arch", sort=True):
        row: dict[str, Any] = {"arch": int(arch), "architecture": str(part["arch_name"].iloc[0]), "repeats": len(part)}
        for split in splits:
            for m in metrics:
                s = mean_ci(part[f"{split}_{m}"])
                row.update({f"{split}_{m}_{k}": s[k] for k in ("mean", "std", "ci_low", "ci_high")})
        rows.append(row)
    return pd.DataFrame(rows)


def rank_biserial(diff: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation: (R+ - R-) / (R+ + R-) over the ranks of |d|, zeros dropped."""
    from scipy.stats import rankdata

    d = np.asarray(diff, float)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    ranks = rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def paired_test(x: Iterable[float], y: Iterable[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Wilcoxon signed-rank test of x vs y paired by position, with effect sizes: the mean difference
    and its t interval, the rank-biserial correlation, and Cohen's d_z (mean / std of the differences)."""
    from scipy import stats

    a, b = np.asarray(list(x), float), np.asarray(list(y), float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    ci = mean_ci(d, confidence)
    out = {"pairs": int(len(d)), "mean_diff": ci["mean"], "diff_ci_low": ci["ci_low"], "diff_ci_high": ci["ci_high"],
           "rank_biserial": rank_biserial(d) if len(d) else math.nan,
           "cohens_dz": ci["mean"] / ci["std"] if len(d) > 1 and ci["std"] > 0 else math.nan}
    if len(d) == 0:
        return {**out, "statistic": math.nan, "p_value": math.nan}
    if not np.any(d != 0):
        return {**out, "statistic": 0.0, "p_value": 1.0}  # identical in every repeat: no evidence of a difference
    res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def holm(p_values: Iterable[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(list(p_values), float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    order = valid[np.argsort(p[valid], kind="mergesort")]
    m, running = len(order), 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def paired_tests(results: pd.DataFrame, references: tuple[int, ...] = (3, 2),
                 metrics: tuple[str, ...] = ("test_f1", "test_accuracy", "val_f1", "val_accuracy")) -> pd.DataFrame:
    """Each architecture against each reference (#3 real DES, #2 no DES) on every metric, paired by repeat;
    Holm adjustment within each (reference, metric) family."""
    rows = []
    archs = sorted(int(a) for a in results["arch"].unique())
    for ref in references:
        if ref not in archs:
            continue
        base = results[results["arch"] == ref].set_index("repeat")
        for metric in metrics:
            family = []
            for arch in archs:
                if arch == ref:
                    continue
                other = results[results["arch"] == arch].set_index("repeat")
                common = sorted(set(base.index) & set(other.index))
                test = paired_test(other.loc[common, metric], base.loc[common, metric])
                family.append({"reference": ref, "metric": metric, "arch": arch,
                               "architecture": str(other["arch_name"].iloc[0]),
                               "mean": float(other.loc[common, metric].mean()),
                               "reference_mean": float(base.loc[common, metric].mean()), **test})
            for row, adj in zip(family, holm(r["p_value"] for r in family)):
                row["p_holm"] = adj
            rows += family
    return pd.DataFrame(rows)
