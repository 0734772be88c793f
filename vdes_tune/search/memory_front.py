"""What more GPU memory buys: the accuracy-against-memory front of a search whose points differ in memory.

The paper found that some U-Net widths and depths do not fit a 24 GB card and left open what a larger one
would buy. Given each point's estimated peak memory (`training/memory.py`, as `vdes-tune plan` prints it) and
its per-seed scores, the front is the set of points no cheaper point beats (Pareto, memory against the mean
objective), and for each budget of a list of cards (8 ... 80 GB) the best point that fits, its mean with a 95%
t interval over its seeds, and what the step up from the previous budget buys: the paired difference of the
two choices over their shared seeds, with its interval (`race.evidence`, the one place paired differences are
taken).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

BUDGETS_GB = (8, 12, 16, 24, 40, 80)
MIN_SPREAD = 1.10  # the largest estimate at least 10% above the smallest: the space varies the memory


def varies_memory(memory_gb: list[float]) -> bool:
    """Whether the points' memory estimates differ enough for a front to say something."""
    known = [m for m in memory_gb if m == m and m > 0]
    return len(known) >= 2 and max(known) >= MIN_SPREAD * min(known)


def _mean_ci(scores: dict[str, float]) -> tuple[float, float | None, float | None]:
    from scipy import stats

    values = [v for v in scores.values() if v == v]
    if not values:
        return float("nan"), None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def memory_front(points: list[dict[str, Any]], mode: str = "max",
                 budgets: tuple[float, ...] = BUDGETS_GB) -> dict[str, Any]:
    """The front of `points` (each: `values` (the searched values), `memory_gb`, `scores` (seed -> score)):
    the Pareto points, and per budget the best point that fits and what the step up from the budget before
    buys."""
    from vdes_tune.search.race import evidence

    sign = 1.0 if mode == "max" else -1.0
    rows = []
    for p in points:
        mean, low, high = _mean_ci(p["scores"])
        if mean == mean and p["memory_gb"] == p["memory_gb"]:
            rows.append({**p, "mean": mean, "ci95": [low, high]})
    rows.sort(key=lambda r: (r["memory_gb"], -sign * r["mean"]))
    pareto, best = [], -math.inf
    for r in rows:
        if sign * r["mean"] > best:
            best = sign * r["mean"]
            pareto.append(_entry(r))
    steps, before = [], None
    for budget in budgets:
        fits = [r for r in rows if r["memory_gb"] <= budget]
        choice = max(fits, key=lambda r: (sign * r["mean"], -r["memory_gb"])) if fits else None
        step: dict[str, Any] = {"budget_gb": budget, "best": _entry(choice) if choice else None, "buys": None}
        if choice and before and choice is not before:
            found = evidence(choice["scores"], before["scores"], mode, "wilcoxon")
            step["buys"] = {"mean_diff": found["mean_diff"], "diff_ci95": found["diff_ci95"], "shared_seeds": found["n"],
                            "p_not_better": found["p_worse"]}
        elif choice and before:
            step["buys"] = {"mean_diff": 0.0, "diff_ci95": [0.0, 0.0], "shared_seeds": len(choice["scores"]),
                            "p_not_better": 1.0, "same_point": True}
        steps.append(step)
        before = choice or before
    return {"pareto": pareto, "budgets": steps, "mode": mode}


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {"values": row["values"], "memory_gb": row["memory_gb"], "mean": row["mean"], "ci95": row["ci95"],
            "seeds": len(row["scores"])}


def front_lines(front: dict[str, Any], metric: str) -> list[str]:
    """The front as text, one line per budget."""
    out = []
    for step in front["budgets"]:
        best = step["best"]
        if best is None:
            out.append(f"{step['budget_gb']:g} GB: no point fits")
            continue
        low, high = best["ci95"]
        shown = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in best["values"].items())
        line = (f"{step['budget_gb']:g} GB: {shown} ({best['memory_gb']:.2f} GB), {metric} {best['mean']:.4f}"
                + (f" [{low:.4f}, {high:.4f}]" if low is not None else "") + f" over {best['seeds']} seed(s)")
        buys = step["buys"]
        if buys and buys.get("same_point"):
            line += "; the step up buys nothing (the same point)"
        elif buys:
            lo, hi = buys["diff_ci95"]
            line += (f"; the step up buys {buys['mean_diff']:+.4f}" + (f" [{lo:+.4f}, {hi:+.4f}]" if lo is not None
                                                                      else "") + f" over {buys['shared_seeds']} shared seed(s)")
        out.append(line)
    return out
