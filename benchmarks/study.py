"""A CPU study that learns: the six architectures x R repeats on the phantom, through the real pipeline
(synth -> ingest -> CycleGAN -> evaluate with a U-Net/PT trained on the way -> report), then Table 3, the
paired tests and the answer sentence, checked against the targets of a study whose phantom carries the
signal (docs/phantom.md):

- #1 (LE only) reaches test F1 >= 0.70;
- #3 (real DES) beats #1 by >= 0.05 test F1 with a paired Wilcoxon p < 0.05;
- #4 (U-Net/PT virtual DES) is at or above #1 and below #3;
- no architecture is degenerate (all-negative on test in every repeat).

With `--signal null` the targets are instead that no architecture differs from #1 (Holm-adjusted p >= 0.05).

    python benchmarks/study.py [--patients 100] [--crop-size 64] [--repeats 8] [--epochs 15] [--signal paper]
                               [--split 0.70,0.15,0.15] [--work DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml


def pipeline(args: argparse.Namespace) -> dict:
    """The study as a pipeline file: the same stages a user runs, sized for 2 CPU cores."""
    return {
        "name": "cpu-study",
        "description": "benchmarks/study.py",
        "stages": [
            {"ingest": {"crop_size": args.crop_size, "seed": args.seed, "qa_samples": 2,
                        "split_fractions": [float(f) for f in args.split.split(",")]}},
            {"generators": [{"name": "cyclegan-study", "model": "cyclegan", "epochs": args.gan_epochs,
                             "batch_size": 8, "lr": 2.0e-4, "features": 16, "blocks": 2, "disc_features": 16,
                             "seed": args.seed, "samples": 2}]},
            {"pretrain": {"run": "study"}},
            {"evaluate": {"run": "study", "repeats": args.repeats, "seed": args.seed,
                          "archs": [int(a) for a in args.archs.split(",")],
                          "train": {"classifier": "resnet18", "epochs": args.epochs, "batch_size": 8,
                                    "lr": args.lr, "unet_width": 16, "unet_depth": 4},
                          "generators": {"unet": {"epochs": args.epochs, "batch_size": 8, "samples": 2}},
                          "vdes": {6: "cyclegan-study"}}},
            {"report": {"run": "study"}},
        ],
    }


def check(results: pd.DataFrame, signal: str, answer: dict | None = None) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for the signal's targets; with the paired answer (repeats and patients), its
    verdicts too: on `null` every difference to no DES must be "no clear difference", on `paper` real DES
    must be better than no DES."""
    from vdes_tune.evaluation import stats

    f1 = results.pivot_table(index="repeat", columns="arch", values="test_f1")
    mean = f1.mean()
    out = []
    if answer and answer.get("method") == "repeats and patients":
        versus = [c for c in answer["comparisons"] if c["reference"] == answer["no_des"]]
        if signal == "null":
            flagged = [f"#{c['arch']} {c['metric']} {c['verdict']}" for c in versus
                       if c["verdict"] != "no clear difference"]
            out.append(("null: the answer finds no difference to no DES (F1 and ROC-AUC, #3-#6)", not flagged,
                        f"{len(versus) - len(flagged)} of {len(versus)} intervals contain 0"
                        + (f"; flagged: {', '.join(flagged)}" if flagged else "")))
        else:
            gain = answer["real_gain"].get("f1")
            if gain:
                out.append(("answer: real DES better than no DES on test F1 (repeats + patients interval > 0)",
                            gain["verdict"] == "better", f"{100 * gain['diff']:+.1f} points (95% CI "
                            f"{100 * gain['ci_low']:+.1f} to {100 * gain['ci_high']:+.1f})"))
    degenerate = [int(a) for a in f1.columns if (f1[a] == 0).all()]
    out.append(("no architecture all-negative on test in every repeat", not degenerate,
                f"all-negative: {degenerate or 'none'}; all-negative jobs per arch: "
                + ", ".join(f"#{a} {int((f1[a] == 0).sum())}" for a in f1.columns)))
    if signal == "null":
        tests = stats.paired_tests(results, references=(1,), metrics=("test_f1",))
        low = float(tests["p_holm"].min()) if len(tests) else float("nan")
        out.append(("null: no architecture differs from #1 (Holm p >= 0.05)", bool(low >= 0.05),
                    f"smallest Holm-adjusted p = {low:.3g}; mean test F1 " + ", ".join(
                        f"#{a} {mean[a]:.3f}" for a in f1.columns)))
        return out
    if 1 in f1.columns:
        out.append(("#1 test F1 >= 0.70", bool(mean[1] >= 0.70), f"{mean[1]:.3f}"))
    if {1, 3} <= set(f1.columns):
        t = stats.paired_test(f1[3], f1[1])
        out.append(("#3 - #1 >= 0.05 with Wilcoxon p < 0.05", bool(t["mean_diff"] >= 0.05 and t["p_value"] < 0.05),
                    f"{t['mean_diff']:+.3f} (95% CI {t['diff_ci_low']:+.3f} to {t['diff_ci_high']:+.3f}), "
                    f"p = {t['p_value']:.3g}"))
    if {1, 3, 4} <= set(f1.columns):
        out.append(("#1 <= #4 < #3", bool(mean[1] <= mean[4] < mean[3]),
                    f"#1 {mean[1]:.3f}, #4 {mean[4]:.3f}, #3 {mean[3]:.3f}"))
    return out


def main() -> None:
    """Run the study and print Table 3, the targets and the answer."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--gan-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--archs", default="1,2,3,4,5,6")
    parser.add_argument("--split", default="0.70,0.15,0.15", help="Train, validation and test fractions of the "
                        "patients (e.g. 0.35,0.075,0.575 doubles the patients into the test split only).")
    parser.add_argument("--signal", default="paper", choices=("paper", "null", "des-only"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="Keep the workspace here (default: a temp dir).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from vdes_tune.config import SynthConfig
    from vdes_tune.phantom.dataset import write_dataset
    from vdes_tune.evaluation import stats
    from vdes_tune.evaluation.answer import answer_of
    from vdes_tune.report.page import markdown_table
    from vdes_tune.report.study import verdict_table
    from vdes_tune.pipeline import load_pipeline, run_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        raw, work = root / "raw", root / "work"
        start = time.perf_counter()
        if not (raw / "synthetic_truth.csv").is_file():
            write_dataset(SynthConfig(patients=args.patients, seed=args.seed, signal=args.signal), raw)
        synth_s = time.perf_counter() - start
        pipe_path = root / "study.yaml"
        pipe_path.write_text(yaml.safe_dump(pipeline(args), sort_keys=False))
        summaries = run_pipeline(load_pipeline(pipe_path), raw, work, None,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
        wall = time.perf_counter() - start
        results = pd.read_parquet(work / "eval" / "study" / "results.parquet")
        crops = pd.read_parquet(work / "dataset" / "crops.parquet")
        t3 = stats.table3(results)
        answer = answer_of(work / "eval" / "study")
        targets = check(results, args.signal, answer)
        print(f"\nCPU study: {args.patients} patients ({len(crops)} crops, {100 * crops['label'].mean():.1f}% "
              f"malignant), signal {args.signal}, {args.crop_size} px, resnet18, {args.epochs} epochs, batch 8, "
              f"lr {args.lr:g}, {args.repeats} repeats; wall {wall / 60:.1f} min (synth {synth_s:.0f} s)\n")
        print("| arch | architecture | val F1 | test F1 [95% CI] | test ROC-AUC | test accuracy |")
        print("|---|---|---|---|---|---|")
        for _, r in t3.iterrows():
            print(f"| #{r['arch']} | {r['architecture']} | {r['val_f1_mean']:.3f} ({r['val_f1_std']:.3f}) | "
                  f"{r['test_f1_mean']:.3f} ({r['test_f1_std']:.3f}) [{r['test_f1_ci_low']:.3f}, "
                  f"{r['test_f1_ci_high']:.3f}] | {r['test_roc_auc_mean']:.3f} ({r['test_roc_auc_std']:.3f}) | "
                  f"{r['test_accuracy_mean']:.3f} ({r['test_accuracy_std']:.3f}) |")
        print()
        for name, met, measured in targets:
            print(f"- {name}: {'met' if met else 'MISSED'} ({measured})")
        print(f"\n{answer['sentence']}\n")
        verdicts = verdict_table(answer)
        if len(verdicts):
            print(markdown_table(verdicts))
        stage_s = {s["label"]: s["seconds"] for s in summaries}
        if args.json:
            args.json.write_text(json.dumps({
                "args": {k: str(v) for k, v in vars(args).items()}, "wall_s": wall, "crops": len(crops),
                "table3": json.loads(t3.to_json(orient="records")),
                "targets": [{"target": n, "met": m, "measured": v} for n, m, v in targets],
                "answer": answer["sentence"], "stages": stage_s}, indent=2, default=str))


if __name__ == "__main__":
    main()
