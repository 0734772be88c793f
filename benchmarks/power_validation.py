"""Does the planner's projection come true? (issue 23, item 5)

1. Simulated evaluations (`evaluation/simulate.py`: patients with a shared random effect, 1-3 crops each, every
architecture's repeats a noisy classifier; real DES #3 gains `--effect` over no DES #2) are analysed by the
answer's own code (`paired.analyse`). The planner's variance parts per repeat and per test patient come from
pilot studies at one size (their mean over `--pilots` pilots, so the check is of the projection, not of one
pilot's luck); `evaluation/power.py` projects the chance of a decisive verdict on real DES's gain to three
other sizes, and `--studies` fresh studies at each size measure the rate. Target: within 5 points. Beside
it, the spread of what a single pilot projects (the planner's everyday use).

2. `--phantom PILOT STUDY`: two finished phantom evaluations (eval/<run>/ folders), a small one and a larger
one. Each comparison's interval half-width projected from the pilot to the study's size against the one the
study measured (target: within 30%), and the projected chance of a decisive verdict against the verdict the
study reached. Appends to `--phantom-out`.

    python benchmarks/power_validation.py [--studies 400] [--pilots 100]
    python benchmarks/power_validation.py --phantom PILOT_EVAL_DIR STUDY_EVAL_DIR --label "demo -> CPU study"
    python benchmarks/power_validation.py --subsample STUDY_EVAL_DIR [--pilot-sizes 13,26,40]

3. `--subsample STUDY`: pilots cut from one finished evaluation (random sets of its test patients, the same
trained models), each projected to the whole test split: how far one pilot of a given size can be trusted,
and whether the projection is biased (the square root of the mean projected variance against the measured).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, astuple
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def decisive_rate(size: tuple[int, int], studies: int, effect: float, seed: int, bootstrap: int) -> float:
    """Share of simulated studies at (test patients, repeats) whose real-DES gain verdict is decisive."""
    from vdes_tune.config import AnalysisConfig
    from vdes_tune.evaluation.paired import analyse
    from vdes_tune.evaluation.simulate import simulated_study

    rng = np.random.default_rng(seed)
    cfg = AnalysisConfig(bootstrap=bootstrap, virtual=(4,))
    hits = 0
    for _ in range(studies):
        gain = analyse(simulated_study(rng, patients=size[0], repeats=size[1], effects={3: effect}), cfg)
        hits += gain["real_gain"]["f1"]["verdict"] != "no clear difference"
    return hits / studies


def pilot_components(size: tuple[int, int], pilots: int, effect: float, seed: int, bootstrap: int) -> list:
    """The planner's variance parts of each of `pilots` pilot studies at one size."""
    from vdes_tune.config import AnalysisConfig
    from vdes_tune.evaluation.paired import analyse
    from vdes_tune.evaluation.power import Components, components
    from vdes_tune.evaluation.simulate import simulated_study

    rng = np.random.default_rng(seed)
    cfg = AnalysisConfig(bootstrap=bootstrap, virtual=(4,))
    parts = []
    for _ in range(pilots):
        answer = analyse(simulated_study(rng, patients=size[0], repeats=size[1], effects={3: effect}), cfg)
        c = components(answer["real_gain"]["f1"], answer["patients"])
        parts.append(c)
    return parts


def mean_components(parts: list):
    """The variance parts averaged over pilots."""
    from vdes_tune.evaluation.power import Components

    return Components(*(float(x) for x in np.mean([astuple(c) for c in parts], axis=0)))


def phantom_pair(pilot_dir: Path, study_dir: Path, label: str) -> dict:
    """Every comparison's half-width and decisive chance projected from one finished evaluation to another's
    size, against what the other measured."""
    from vdes_tune.evaluation import power
    from vdes_tune.evaluation.answer import answer_of

    pilot, study = answer_of(pilot_dir), answer_of(study_dir)
    size = (int(study["patients"]), int(study["repeats"]))
    measured = {(c["metric"], c["arch"], c["reference"]): c for c in study["comparisons"]}
    rows = []
    for c in pilot["comparisons"]:
        found, other = power.planned(pilot, c), measured.get((c["metric"], c["arch"], c["reference"]))
        if found is None or other is None or not power.estimable(other):
            continue
        kind, margin, comp = found
        half = (other["ci_high"] - other["ci_low"]) / 2
        projected = power.half_width(comp, *size)
        rows.append({"metric": c["metric"], "arch": c["arch"], "reference": c["reference"], "kind": kind,
                     "pilot_diff": c["diff"], "pilot_half_width": (c["ci_high"] - c["ci_low"]) / 2,
                     "projected_half_width": projected, "measured_half_width": half, "ratio": projected / half,
                     "projected_decisive": power.decisive(power.verdict_chances(comp, *size, kind, margin)),
                     "study_diff": other["diff"], "study_verdict": other["verdict"]})
    ratios = np.array([r["ratio"] for r in rows])
    return {"label": label, "pilot": str(pilot_dir), "study": str(study_dir),
            "pilot_size": [int(pilot["patients"]), int(pilot["repeats"])], "study_size": list(size),
            "within_30_percent": float(np.mean(np.abs(ratios - 1) <= 0.3)) if len(rows) else float("nan"),
            "median_ratio": float(np.median(ratios)) if len(rows) else float("nan"), "rows": rows}


def subsampled_pilots(study_dir: Path, sizes: tuple[int, ...], draws: int, seed: int = 0) -> dict:
    """Pilots cut from a finished evaluation: `draws` random sets of P test patients (the same trained models and
    repeats), each answered and projected to the whole test split, against the half-widths the whole split
    measured; per pilot size, the F1 ratios' spread and the bias of the mean projected variance."""
    import pandas as pd

    from vdes_tune.config import analysis_config
    from vdes_tune.evaluation import paired, power
    from vdes_tune.evaluation.answer import answer_of

    full = answer_of(study_dir)
    cfg = analysis_config(json.loads((study_dir / "plan.json").read_text())["config"].get("analysis"))
    predictions = pd.read_parquet(study_dir / "predictions.parquet")
    test = predictions["split"] == "test"
    patients = np.sort(predictions.loc[test, "patient_id"].unique())
    size = (int(full["patients"]), int(full["repeats"]))
    measured = {(c["metric"], c["arch"], c["reference"]): c for c in full["comparisons"]
                if c["metric"] == "f1" and c["reference"] in (full["real"], full["no_des"]) and power.estimable(c)}
    rng = np.random.default_rng(seed)
    out = {"study": str(study_dir), "study_size": list(size), "draws": draws, "sizes": []}
    for p in sizes:
        projected: dict[tuple, list[float]] = {k: [] for k in measured}
        for _ in range(draws):
            pick = rng.choice(patients, p, replace=False)
            answer = paired.analyse(predictions[~test | predictions["patient_id"].isin(pick)], cfg)
            for c in answer["comparisons"]:
                key = (c["metric"], c["arch"], c["reference"])
                found = power.planned(answer, c) if key in measured else None
                if found is not None:
                    projected[key].append(power.half_width(found[2], *size))
        rows = []
        for key, halves in projected.items():
            half = (measured[key]["ci_high"] - measured[key]["ci_low"]) / 2
            ratios = np.array(halves) / half
            rows.append({"comparison": f"#{key[1]} vs #{key[2]}", "measured_half_width": half,
                         "median_ratio": float(np.median(ratios)), "p10": float(np.percentile(ratios, 10)),
                         "p90": float(np.percentile(ratios, 90)),
                         "within_30_percent": float(np.mean(np.abs(ratios - 1) <= 0.3)),
                         "rms_ratio": float(np.sqrt(np.mean(np.square(ratios))))})
        out["sizes"].append({"pilot_patients": p, "rows": rows})
    return out


def print_subsampled(found: dict) -> None:
    """The subsampled pilots as Markdown, one table row per pilot size and comparison."""
    print(f"pilots cut from {found['study']} ({found['study_size'][0]} test patients x {found['study_size'][1]} "
          f"repeats), {found['draws']} per size; F1, projected half-width / measured")
    print("| pilot test patients | comparison | measured half-width | median ratio [10th, 90th pct] | within 30% | "
          "sqrt(mean projected variance) / measured |")
    print("|---|---|---|---|---|---|")
    for s in found["sizes"]:
        for r in s["rows"]:
            print(f"| {s['pilot_patients']} | {r['comparison']} | {100 * r['measured_half_width']:.1f} | "
                  f"{r['median_ratio']:.2f} [{r['p10']:.2f}, {r['p90']:.2f}] | {r['within_30_percent']:.0%} | "
                  f"{r['rms_ratio']:.2f} |")


def print_pair(pair: dict) -> None:
    """The pair as Markdown: the F1 rows, then a line per metric."""
    print(f"{pair['label']}: {pair['pilot_size'][0]} test patients x {pair['pilot_size'][1]} repeats -> "
          f"{pair['study_size'][0]} x {pair['study_size'][1]}")
    print("| metric | comparison | pilot diff +- half-width | projected half-width | measured | ratio | "
          "projected P(decisive) | study: diff, verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for r in pair["rows"]:
        print(f"| {r['metric']} | #{r['arch']} vs #{r['reference']} | {100 * r['pilot_diff']:+.1f} +- "
              f"{100 * r['pilot_half_width']:.1f} | {100 * r['projected_half_width']:.1f} | "
              f"{100 * r['measured_half_width']:.1f} | {r['ratio']:.2f} | {r['projected_decisive']:.2f} | "
              f"{100 * r['study_diff']:+.1f}, {r['study_verdict']} |")
    for metric in sorted({r["metric"] for r in pair["rows"]}):
        ratios = np.array([r["ratio"] for r in pair["rows"] if r["metric"] == metric])
        print(f"- {metric}: median ratio {np.median(ratios):.2f}, within 30%: {np.sum(np.abs(ratios - 1) <= 0.3)} "
              f"of {len(ratios)}")
    print(f"- all metrics: median ratio {pair['median_ratio']:.2f}, within 30%: {pair['within_30_percent']:.0%}")


def main() -> None:
    """Project from pilots, measure at three sizes, print a Markdown table and write JSON."""
    from vdes_tune.evaluation.power import assurance, decisive, standard_error, verdict_chances
    from vdes_tune.search.replay import wilson

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--pilots", type=int, default=100)
    parser.add_argument("--effect", type=float, default=1.0)
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "power-validation.json"))
    parser.add_argument("--phantom", nargs=2, type=Path, metavar=("PILOT", "STUDY"), default=None)
    parser.add_argument("--label", default="phantom pair")
    parser.add_argument("--subsample", type=Path, default=None, metavar="STUDY",
                        help="Cut pilots of --pilot-sizes test patients from this finished evaluation instead.")
    parser.add_argument("--pilot-sizes", default="13,26,40")
    parser.add_argument("--phantom-out", type=Path,
                        default=ROOT / "benchmarks" / "data" / "power-validation-phantom.json")
    args = parser.parse_args()
    if args.subsample:
        found = subsampled_pilots(args.subsample, tuple(int(x) for x in args.pilot_sizes.split(",")), 200)
        print_subsampled(found)
        done = json.loads(args.phantom_out.read_text()) if args.phantom_out.is_file() else []
        done = [p for p in done if p.get("label") != "subsampled pilots"] + [{"label": "subsampled pilots", **found}]
        args.phantom_out.write_text(json.dumps(done, indent=1, default=float) + "\n")
        return
    if args.phantom:
        pair = phantom_pair(*args.phantom, args.label)
        print_pair(pair)
        done = json.loads(args.phantom_out.read_text()) if args.phantom_out.is_file() else []
        done = [p for p in done if p["label"] != args.label] + [pair]
        args.phantom_out.write_text(json.dumps(done, indent=1, default=float) + "\n")
        return
    start = time.perf_counter()
    pilot = (40, 5)
    singles = pilot_components(pilot, args.pilots, args.effect, 1, args.bootstrap)
    comp = mean_components(singles)
    print(f"pilot parts ({args.pilots} pilots of {pilot[0]} test patients x {pilot[1]} repeats): diff "
          f"{comp.diff:+.4f}, per repeat {comp.per_repeat:.5f}, per patient {comp.per_patient:.5f}, repeat x patient "
          f"{comp.per_interaction:.5f}")
    rows = []
    for i, size in enumerate([(12, 3), (20, 4), (60, 10)]):  # undecidable, borderline, comfortably decided
        projected = decisive(verdict_chances(comp, size[0], size[1], "none"))
        one = np.array([decisive(verdict_chances(c, size[0], size[1], "none")) for c in singles])
        assured = np.array([assurance(c, standard_error(c, *pilot), size[0], size[1], "none") for c in singles])
        observed = decisive_rate(size, args.studies, args.effect, 100 + i, args.bootstrap)
        low, high = wilson(round(observed * args.studies), args.studies)
        rows.append({"patients": size[0], "repeats": size[1], "projected": projected, "observed": observed,
                     "ci_low": low, "ci_high": high, "gap": observed - projected,
                     "single_pilot": {"median": float(np.median(one)), "p10": float(np.percentile(one, 10)),
                                      "p90": float(np.percentile(one, 90)),
                                      "within_10_points": float(np.mean(np.abs(one - observed) <= 0.10)),
                                      "mean": float(one.mean()), "assurance_mean": float(assured.mean()),
                                      "assurance_p10": float(np.percentile(assured, 10)),
                                      "assurance_p90": float(np.percentile(assured, 90))}})
    wall = time.perf_counter() - start
    print("| test patients | repeats | projected power | observed decisive rate [95% CI] | gap | one pilot's "
          "projection: median [10th, 90th pct] | one pilot within 10 points | one pilot's assurance: mean "
          "[10th, 90th pct] |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        one = r["single_pilot"]
        print(f"| {r['patients']} | {r['repeats']} | {r['projected']:.3f} | {r['observed']:.3f} "
              f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['gap']:+.3f} | {one['median']:.3f} "
              f"[{one['p10']:.3f}, {one['p90']:.3f}] | {one['within_10_points']:.0%} | {one['assurance_mean']:.3f} "
              f"[{one['assurance_p10']:.3f}, {one['assurance_p90']:.3f}] |")
    print(f"{args.studies} studies per size; wall {wall / 60:.1f} min")
    Path(args.out).write_text(json.dumps({"pilot": list(pilot), "pilots": args.pilots, "studies": args.studies,
                                          "effect": args.effect, "bootstrap": args.bootstrap,
                                          "components": asdict(comp),
                                          "rows": rows, "wall_s": wall}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
