"""Does the planner's projected power come true? (issue 23, item 5, first check)

Simulated evaluations (`evaluation/simulate.py`: patients with a shared random effect, 1-3 crops each, every
architecture's repeats a noisy classifier; real DES #3 gains `--effect` over no DES #2) are analysed by the
answer's own code (`paired.analyse`). The planner's variance parts per repeat and per test patient come from
pilot studies at one size (their mean over `--pilots` pilots, so the check is of the projection, not of one
pilot's luck); `evaluation/power.py` projects the chance of a decisive verdict on real DES's gain to three
other sizes, and `--studies` fresh studies at each size measure the rate. Target: within 5 points.

    python benchmarks/power_validation.py [--studies 400] [--pilots 100]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def decisive_rate(size: tuple[int, int], studies: int, effect: float, seed: int, bootstrap: int) -> float:
    """Share of simulated studies at (test patients, repeats) whose real-DES gain verdict is decisive."""
    from vdes_tune.evaluation.paired import AnalysisConfig, analyse
    from vdes_tune.evaluation.simulate import simulated_study

    rng = np.random.default_rng(seed)
    cfg = AnalysisConfig(bootstrap=bootstrap, virtual=(4,))
    hits = 0
    for _ in range(studies):
        gain = analyse(simulated_study(rng, patients=size[0], repeats=size[1], effects={3: effect}), cfg)
        hits += gain["real_gain"]["f1"]["verdict"] != "no clear difference"
    return hits / studies


def pilot_components(size: tuple[int, int], pilots: int, effect: float, seed: int, bootstrap: int):
    """The planner's variance parts, averaged over pilot studies at one size."""
    from vdes_tune.evaluation.paired import AnalysisConfig, analyse
    from vdes_tune.evaluation.power import Components, components
    from vdes_tune.evaluation.simulate import simulated_study

    rng = np.random.default_rng(seed)
    cfg = AnalysisConfig(bootstrap=bootstrap, virtual=(4,))
    parts = []
    for _ in range(pilots):
        answer = analyse(simulated_study(rng, patients=size[0], repeats=size[1], effects={3: effect}), cfg)
        c = components(answer["real_gain"]["f1"], answer["patients"])
        parts.append((c.diff, c.per_repeat, c.per_patient, c.per_interaction))
    return Components(*(float(x) for x in np.mean(parts, axis=0)))


def main() -> None:
    """Project from pilots, measure at three sizes, print a Markdown table and write JSON."""
    from vdes_tune.evaluation.power import decisive, verdict_chances
    from vdes_tune.search.replay import wilson

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--pilots", type=int, default=100)
    parser.add_argument("--effect", type=float, default=1.0)
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "power-validation.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    pilot = (40, 5)
    comp = pilot_components(pilot, args.pilots, args.effect, 1, args.bootstrap)
    print(f"pilot parts ({args.pilots} pilots of {pilot[0]} test patients x {pilot[1]} repeats): diff "
          f"{comp.diff:+.4f}, per repeat {comp.per_repeat:.5f}, per patient {comp.per_patient:.5f}, repeat x patient "
          f"{comp.per_interaction:.5f}")
    rows = []
    for i, size in enumerate([(12, 3), (20, 4), (60, 10)]):  # undecidable, borderline, comfortably decided
        projected = decisive(verdict_chances(comp, size[0], size[1], "none"))
        observed = decisive_rate(size, args.studies, args.effect, 100 + i, args.bootstrap)
        low, high = wilson(round(observed * args.studies), args.studies)
        rows.append({"patients": size[0], "repeats": size[1], "projected": projected, "observed": observed,
                     "ci_low": low, "ci_high": high, "gap": observed - projected})
    wall = time.perf_counter() - start
    print(f"| test patients | repeats | projected power | observed decisive rate [95% CI] | gap |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['patients']} | {r['repeats']} | {r['projected']:.3f} | {r['observed']:.3f} "
              f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['gap']:+.3f} |")
    print(f"{args.studies} studies per size; wall {wall / 60:.1f} min")
    Path(args.out).write_text(json.dumps({"pilot": list(pilot), "pilots": args.pilots, "studies": args.studies,
                                          "effect": args.effect, "bootstrap": args.bootstrap,
                                          "components": asdict(comp),
                                          "rows": rows, "wall_s": wall}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
