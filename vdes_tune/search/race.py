"""Paired evidence over shared seeds: the one-sided tests a seed race decides with (`race_scheduler.py`),
and the race's log (`race.json` in the experiment folder) that export and the search report read."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

RACE_LOG = "race.json"  # the seed race's decisions (race_searcher.RacingSearcher)
RUNG_LOG = "rungs.json"  # the epoch rungs' stops with their cutoffs (race_searcher.RungScheduler)
SEED_START, SEED_COUNT = "_seed_start", "_seed_count"  # config keys a seed race adds to a point's trials


def paired_p(diffs: list[float], test: str = "wilcoxon") -> float:
    """One-sided p-value that the paired differences (challenger - incumbent, larger is better) are below 0.

    Wilcoxon: the exact signed-rank distribution over all 2^n sign flips, zero differences dropped
    (Wilcoxon's convention) and tied magnitudes given their average rank; t: the paired t-test. With fewer
    than 2 usable differences, or none different from 0, the answer is 1 (no evidence)."""
    from scipy import stats

    d = [x for x in diffs if x == x]
    if test == "t":
        if len(d) < 2:
            return 1.0
        sd = statistics.stdev(d)
        mean = statistics.fmean(d)
        if sd == 0:
            return 0.0 if mean < 0 else 1.0
        return float(stats.t.cdf(mean / (sd / math.sqrt(len(d))), df=len(d) - 1))
    d = [x for x in d if x != 0]
    if len(d) < 2:
        return 1.0
    ranks = stats.rankdata([abs(x) for x in d])
    observed = sum(r for r, x in zip(ranks, d) if x > 0)  # small W+ means the challenger is worse
    # Exact null distribution of W+ with these (possibly tied) ranks: each rank counts with a random sign.
    doubled = [int(round(2 * r)) for r in ranks]
    counts = {0: 1}
    for r in doubled:
        nxt: dict[int, int] = {}
        for total, c in counts.items():
            nxt[total] = nxt.get(total, 0) + c
            nxt[total + r] = nxt.get(total + r, 0) + c
        counts = nxt
    limit = int(round(2 * observed))
    return sum(c for total, c in counts.items() if total <= limit) / 2 ** len(d)


def evidence(challenger: dict[str, float], incumbent: dict[str, float], mode: str, test: str) -> dict[str, Any]:
    """The paired comparison of two points over the seeds both have: n, mean difference (challenger minus
    incumbent, in the objective's direction), and the one-sided p that the challenger is worse."""
    shared = sorted(set(challenger) & set(incumbent), key=int)
    sign = 1.0 if mode == "max" else -1.0
    diffs = [sign * (challenger[s] - incumbent[s]) for s in shared]
    return {"shared_seeds": [int(s) for s in shared], "n": len(diffs),
            "mean_diff": statistics.fmean(diffs) if diffs else float("nan"),
            "p_worse": paired_p(diffs, test), "test": test}


DROPPED = ("dropped", "stopped at rung")  # race outcomes that rule a point out
SCORES_KEY = "seed_scores"


def point_key(config: dict[str, Any]) -> tuple:
    """A hashable key of a configuration's searched values (floats to 12 significant digits; `_` keys, such as
    a race's seeds, left out)."""
    return tuple(sorted((k, float(f"{v:.12g}") if isinstance(v, float) else v)
                        for k, v in config.items() if not k.startswith("_")))


def point_id(config: dict[str, Any]) -> str:
    """A point's identity as text."""
    return json.dumps(point_key(config), default=str)


def seed_scores(result: dict[str, Any]) -> dict[str, float]:
    """A trial's per-seed scores from a result: nested (a trial's last result) or flattened by Tune
    (`seed_scores/<seed>`, what schedulers and searchers receive)."""
    nested = result.get(SCORES_KEY)
    if isinstance(nested, dict):
        return {str(k): float(v) for k, v in nested.items()}
    prefix = SCORES_KEY + "/"
    return {k[len(prefix):]: float(v) for k, v in result.items() if k.startswith(prefix)}


def read_race_log(path: str, race: str = RACE_LOG, rungs: str = RUNG_LOG) -> dict[str, Any] | None:
    """The race log of an experiment folder (local or URI) with the rung stops merged in (`stops`), or None
    when it did not race."""
    from vdes_tune.search.storage import read_text

    found = read_text(f"{path.rstrip('/')}/{race}")
    if not found:
        return None
    log = json.loads(found)
    stops = read_text(f"{path.rstrip('/')}/{rungs}")
    log["stops"] = json.loads(stops)["stops"] if stops else {}
    return log
