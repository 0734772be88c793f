"""Is the answer's interval calibrated? Simulated evaluations with a known truth (vdes_tune.evaluation.simulate):
on null studies (every architecture the same model up to training noise) the share that calls a difference
should be the nominal 5%; with a real effect the 95% interval should cover the population difference (taken
from one 3000-patient, 40-repeat study) about 95% of the time. Also shown: what the repeats-only t interval
(the pre-issue-14 answer) and a patients-only bootstrap would call, on the same studies.

    python benchmarks/answer_calibration.py [--studies 300] [--patients 40] [--repeats 3,8,30] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats as sps

from vdes_tune.config import AnalysisConfig
from vdes_tune.evaluation.paired import analyse, metric_values, patient_weights, score_table
from vdes_tune.evaluation.simulate import simulated_study


def alternatives(frame, cfg: AnalysisConfig, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """#3 - #2 test-F1 intervals of the two one-source methods, for comparison."""
    table = score_table(frame)
    point = metric_values(table, "f1", np.ones((1, len(table.crop_ids))), cfg.threshold)[0]
    d = point[table.index(3)] - point[table.index(2)]
    r = len(d)
    half = sps.t.ppf(0.975, r - 1) * d.std(ddof=1) / math.sqrt(r) if r > 1 else math.inf
    boot = metric_values(table, "f1", patient_weights(table, cfg.bootstrap, rng), cfg.threshold)
    b = (boot[:, table.index(3)] - boot[:, table.index(2)]).mean(axis=1)
    return {"repeats only": (d.mean() - half, d.mean() + half),
            "patients only": tuple(np.percentile(b, [2.5, 97.5]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=300)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--repeats", default="3,8,30")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--effect", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = AnalysisConfig(bootstrap=args.bootstrap, virtual=(4,))
    big = score_table(simulated_study(np.random.default_rng(10_000), patients=3000, repeats=40,
                                      effects={3: args.effect}))
    values = metric_values(big, "f1", np.ones((1, len(big.crop_ids))), 0.5)[0]
    truth = float(np.mean(values[big.index(3)] - values[big.index(2)]))
    print(f"{args.studies} simulated studies per row, {args.patients} test patients, {args.bootstrap} bootstrap "
          f"draws; population #3 - #2 test-F1 difference with effect {args.effect}: {truth:+.4f}\n")
    print("| repeats | truth | method | calls a difference (nominal 0.05 under null) | covers the truth (nominal 0.95) "
          "| seconds |")
    print("|---|---|---|---|---|---|")
    for repeats in (int(r) for r in args.repeats.split(",")):
        for label, effect in (("null", 0.0), ("effect", args.effect)):
            rng = np.random.default_rng(args.seed + repeats * (1 + int(effect > 0)))
            start = time.perf_counter()
            calls = {"repeats + patients": 0, "repeats only": 0, "patients only": 0}
            covers = dict.fromkeys(calls, 0)
            target = 0.0 if effect == 0 else truth
            for _ in range(args.studies):
                frame = simulated_study(rng, patients=args.patients, repeats=repeats, effects={3: effect})
                gain = analyse(frame, cfg)["real_gain"]["f1"]
                intervals = {"repeats + patients": (gain["ci_low"], gain["ci_high"]),
                             **alternatives(frame, cfg, rng)}
                for name, (lo, hi) in intervals.items():
                    calls[name] += not (lo <= 0 <= hi)
                    covers[name] += lo <= target <= hi
            seconds = time.perf_counter() - start
            for name in calls:
                print(f"| {repeats} | {label} | {name} | {calls[name] / args.studies:.3f} | "
                      f"{covers[name] / args.studies:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
