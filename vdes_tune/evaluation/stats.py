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


def des_gain(results: pd.DataFrame, metric: str = "test_f1", le: int = 1, real: int = 3,
             virtual: tuple[int, ...] = (4, 5, 6), boot: int = 4000, seed: int = 0,
             confidence: float = CONFIDENCE) -> dict[str, Any]:
    """What real DES adds over LE (#real - #le, paired by repeat, t interval) and the fraction of that gain
    each virtual DES recovers, (virtual - LE) / (real - LE), with a percentile interval from a bootstrap of
    the repeats (each draw keeps an architecture's repeats paired). Empty when #le or #real is missing."""
    archs = set(int(a) for a in results["arch"].unique())
    if le not in archs or real not in archs:
        return {}
    table = results.pivot_table(index="repeat", columns="arch", values=metric)
    base = table[le]
    gain = paired_test(table[real], base, confidence)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(table), size=(boot, len(table)))
    real_d = (table[real] - base).to_numpy()
    out: dict[str, Any] = {"metric": metric, "le": le, "real": real, "repeats": int(len(table)),
                           "le_mean": float(base.mean()), "real_mean": float(table[real].mean()),
                           "gain": gain, "recovered": {}}
    lo_q, hi_q = 50 * (1 - confidence), 50 * (1 + confidence)
    for arch in virtual:
        if arch not in archs:
            continue
        v_d = (table[arch] - base).to_numpy()
        denominator = real_d.mean()
        fraction = float(v_d.mean() / denominator) if denominator != 0 else math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            boots = v_d[draws].mean(axis=1) / real_d[draws].mean(axis=1)
        boots = boots[np.isfinite(boots)]
        low, high = (np.percentile(boots, [lo_q, hi_q]) if len(boots) else (math.nan, math.nan))
        out["recovered"][arch] = {"mean": float(table[arch].mean()), "vs_le": paired_test(table[arch], base, confidence),
                                  "fraction": fraction, "ci_low": float(low), "ci_high": float(high)}
    return out


def answer_sentence(gain: dict[str, Any], names: dict[int, str] | None = None) -> str:
    """One sentence: how much real DES adds over LE, and how much of it each virtual DES recovers."""
    if not gain:
        return "No answer: the run lacks LE-only (#1) or real-DES (#3) results."
    names = names or {}
    g, metric = gain["gain"], gain["metric"].replace("_", " ")

    def pts(x: float) -> str:
        return f"{100 * x:+.1f}"

    text = (f"Over {gain['repeats']} repeats, real DES (#{gain['real']}) changes {metric} by {pts(g['mean_diff'])} "
            f"points over LE alone (#{gain['le']}; 95% CI {pts(g['diff_ci_low'])} to {pts(g['diff_ci_high'])}, "
            f"Wilcoxon p = {g['p_value']:.3g})")
    if not gain["recovered"]:
        return text + "."
    if not g["diff_ci_low"] > 0:
        parts = [f"{names.get(a, f'#{a}')} {pts(r['vs_le']['mean_diff'])}" for a, r in gain["recovered"].items()]
        return (text + "; with no clear gain to recover, the virtual DES are compared with LE directly: "
                + ", ".join(parts) + " points.")
    parts = [f"{names.get(a, f'#{a}')} {100 * r['fraction']:.0f}% (95% CI {100 * r['ci_low']:.0f} to "
             f"{100 * r['ci_high']:.0f}%)" for a, r in gain["recovered"].items()]
    return text + "; of that gain the virtual DES recover: " + ", ".join(parts) + "."
