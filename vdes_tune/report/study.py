"""report/<run>/: the answer first (a sentence, a forest plot and the verdicts), then the figures, then the
paper's tables with their statistics (collapsed in the HTML; CSV and JSON beside), as report.md and a
self-contained report.html, from an evaluation's results, its per-crop predictions and what made them."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from vdes_tune import __version__
from vdes_tune.config import analysis_config, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.evaluation import calibration, paired, power, quality, stats
from vdes_tune.evaluation.answer import study_answer
from vdes_tune.report import figures, search
from vdes_tune.report.page import fmt, html_page, img_tag, markdown_table
from vdes_tune.workspace import (SCHEMA_VERSION, Workspace, atomic_dir, output_index, read_manifest,
                                 read_parquet_checked, write_json)

LEADERBOARD_ROWS = 10


def table1(workspace: Workspace) -> pd.DataFrame:
    """Crops per split and class (paper Table 1) from the ingested crops."""
    from vdes_tune.data.qa import table1 as crops_table

    if not workspace.dataset.crops.is_file():
        raise BadInputError(f"{workspace.dataset.crops}: missing (run `vdes-tune ingest`)")
    return crops_table(pd.read_parquet(workspace.dataset.crops))


def table2(plan: dict[str, Any]) -> pd.DataFrame:
    """The best rows of each search behind the evaluation (paper Table 2-style), from its leaderboard CSV."""
    parts = []
    for path in plan["config"].get("configs", []):
        board = Path(path).with_name(Path(path).stem + "-leaderboard.csv")
        if board.is_file():
            rows = pd.read_csv(board).head(LEADERBOARD_ROWS)
            rows.insert(0, "experiment", Path(path).stem)
            parts.append(rows)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["experiment"])


def table2_display(t2: pd.DataFrame) -> pd.DataFrame:
    """Table 2 narrowed for reading: ranks, the searched values and the objective (the CSV has every column)."""
    keep = ["experiment", "rank", "trial_id", "status", "feasible", "arch"]
    keep += [c for c in t2.columns if c.startswith("train.")]
    metric = next((c for c in t2.columns if c.endswith("_std")), "")
    keep += [metric.removesuffix("_std"), metric, "seeds", "epochs", "race", "memory_estimate_gb"] if metric else []
    return t2[[c for c in dict.fromkeys(keep) if c in t2.columns]]


def table3_display(t3: pd.DataFrame) -> pd.DataFrame:
    """Table 3 as the paper prints it: mean (std) and [95% CI] of accuracy and F1 on validation and test."""
    out = pd.DataFrame({"arch": [f"#{a}" for a in t3["arch"]], "architecture": t3["architecture"],
                        "repeats": t3["repeats"]})
    for split in ("val", "test"):
        for m in ("accuracy", "f1"):
            p = f"{split}_{m}"
            out[f"{split} {m}"] = [f"{r[p + '_mean']:.3f} ({r[p + '_std']:.3f}) [{r[p + '_ci_low']:.3f}, "
                                   f"{r[p + '_ci_high']:.3f}]" for _, r in t3.iterrows()]
    return out


def verdict_table(answer: dict[str, Any]) -> pd.DataFrame:
    """One row per architecture and metric (F1, ROC-AUC, then sensitivity and specificity at the threshold): the
    paired difference to real DES and to no DES with its interval and verdict, and for a virtual DES the fraction
    of the real-DES gain it recovers; real DES's own row shows its gain over no DES."""
    if answer.get("method") != "repeats and patients":
        return pd.DataFrame()
    rows = []
    by = {(c["metric"], c["arch"], c["reference"]): c for c in answer["comparisons"]}
    real = answer["real"]
    archs = sorted({c["arch"] for c in answer["comparisons"] if c["reference"] in (real, answer["no_des"])},
                   key=lambda a: (a != real, a))
    for arch in archs:
        for metric in answer["metrics"]:
            row: dict[str, Any] = {"architecture": answer["names"].get(str(arch), f"#{arch}"),
                                   "metric": paired.METRIC_NAMES[metric]}
            for ref, what in ((real, "vs real DES"), (answer["no_des"], "vs no DES")):
                c = by.get((metric, arch, ref))
                row[what] = ("" if c is None else
                             f"{100 * c['diff']:+.1f} [{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}] "
                             f"{c['verdict']}")
            frac = (answer.get("recovered", {}).get(str(arch)) or {}).get(metric)
            gain = answer.get("real_gain", {}).get(metric) or {}
            if frac is None:
                row["gain recovered"] = ""
            elif gain.get("verdict") != "better":
                row["gain recovered"] = "n/a: no clear real-DES gain"  # a ratio over noise means nothing
            else:
                row["gain recovered"] = (f"{paired.percent(frac['fraction'])} [{paired.percent(frac['ci_low'], '')}, "
                                         f"{paired.percent(frac['ci_high'], '')}]")
            rows.append(row)
    return pd.DataFrame(rows)


def _needed(n: int | None) -> str:
    return "none suffices" if n is None else str(n)


def plan_table(answer: dict[str, Any], wanted: float = 0.8, repeats: int = paired.PLANNED_REPEATS) -> pd.DataFrame:
    """What would decide each F1 question (real DES's gain; each virtual DES against real and no DES), the
    pilot's differences taken as the truth: `vdes-tune plan-study` in brief, for the report."""
    if answer.get("method") != "repeats and patients":
        return pd.DataFrame()
    names, refs = answer["names"], (answer["real"], answer["no_des"])
    rows = []
    for r in power.study_plan(answer, wanted, repeats, metrics=("f1",)):
        if r["reference"] not in refs:
            continue
        best = r["cheapest"]
        rows.append({
            "comparison": f"{names.get(str(r['arch']), r['arch'])} vs {names.get(str(r['reference']))}",
            "difference (points)": round(100 * r["diff"], 1),
            "bound": f"-{100 * r['margin']:g} (margin)" if r["kind"] == "real" else "0",
            "decisive now": round(r["decisive_now"], 2),
            f"test patients at {r['repeats']} repeats": _needed(r["patients_needed"]),
            f"test patients at {repeats} repeats": _needed(r[f"patients_needed_at_{repeats}"]),
            "more repeats alone": "could" if r["repeats_alone_enough"] else "cannot",
            f"CDD-CESM ({r['horizon_patients']} test patients, {repeats} repeats): decisive":
                round(r[f"decisive_at_horizon_{repeats}"], 2),
            "assurance": round(r[f"assurance_at_horizon_{repeats}"], 2),
            "cheapest on CDD-CESM": f"{best['repeats']} repeats, {best['patients']} patients" if best else "none",
        })
    return pd.DataFrame(rows)


def _search_summaries(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The searches behind the evaluation's configurations, for their figures; one that cannot be read is skipped."""
    found = []
    for path in plan["config"].get("configs", []):
        where = search.experiment_of_best_file(path)
        if not where:
            continue
        try:
            found.append(search.summary(search.load_experiment(where)))
        except (BadInputError, OSError, ValueError, RuntimeError):
            continue
    return found


def build(work: str | Path, run: str = "main", margin: float | None = None) -> dict[str, Any]:
    """Write report/<run>/ from eval/<run>/; returns the paths, the tables and the answer."""
    workspace = Workspace.at(work)
    eval_dir = workspace.pull(workspace.evaluation(run))
    results_path = eval_dir / "results.parquet"
    if not results_path.is_file() or not (eval_dir / "plan.json").is_file():
        raise BadInputError(f"{eval_dir}: no evaluation results (run `vdes-tune evaluate --run {run}` first)")
    results = read_parquet_checked(results_path)
    if results.empty:
        raise BadInputError(f"{results_path}: no finished job yet")
    plan = json.loads((eval_dir / "plan.json").read_text())
    cfg = analysis_config(plan["config"].get("analysis"), margin=margin)
    predictions_path = eval_dir / "predictions.parquet"
    predictions = read_parquet_checked(predictions_path) if predictions_path.is_file() else None
    workspace.pull(workspace.dataset.root)  # what the tables and figures read, for a URI workspace
    for name in plan.get("vdes", {}).values():
        made = read_manifest(workspace.pull(workspace.vdes(name))) or {}
        workspace.pull(workspace.generator(str(made.get("name", name))))
    manifest = read_manifest(eval_dir) or {}
    names = {int(a): f"#{int(a)} {n}" for a, n in results.groupby("arch")["arch_name"].first().items()}
    answer = study_answer(results, predictions, cfg)
    has_predictions = predictions is not None and len(predictions) > 0
    tables = {"answer": paired.comparisons_frame(answer) if answer.get("method") == "repeats and patients"
              else pd.DataFrame(), "plan": plan_table(answer), "table1": table1(workspace), "table2": table2(plan),
              "table3": stats.table3(results), "paired_tests": stats.paired_tests(results),
              "calibration": (calibration.calibration_table(predictions, cfg.calibration_bins, names)
                              if has_predictions else pd.DataFrame()),
              "image_quality": quality.image_quality(workspace, plan, results)}
    pngs: dict[str, bytes] = {}
    if answer.get("method") == "repeats and patients" and any(
            c["reference"] in (answer["real"], answer["no_des"]) for c in answer["comparisons"]):
        pngs["forest.png"] = figures.forest(answer)
        curves = power.power_curves(answer)
        if curves:
            pngs["power.png"] = figures.power_curves(curves, answer["patients"],
                                                     power.split_test_patients(power.CDD_CESM_PATIENTS))
    pngs["f1_distribution.png"] = figures.f1_distribution(results)
    if has_predictions:
        cal = tables["calibration"]
        pngs["calibration.png"] = figures.reliability_diagram(
            calibration.reliability_curves(predictions, cfg.calibration_bins),
            dict(zip(cal["arch"], cal["ece_pooled"])), names)
    if len(tables["image_quality"]) and answer.get("method") == "repeats and patients":
        pngs["quality_vs_gain.png"] = figures.quality_vs_gain(tables["image_quality"], answer)
    columns, labels = figures.montage_sources(workspace, plan, eval_dir)
    pngs["montage.png"] = figures.montage(columns, labels)
    searches = _search_summaries(plan)
    for found in searches:
        for name, data in found["figures"].items():
            pngs[f"{found['experiment']}-{name}"] = data
        tables[f"importance-{found['experiment']}"] = found["importance"]
    qa = sorted(workspace.dataset.qa.glob("overlay_*.png"))[:2]
    final = workspace.report(run)
    with atomic_dir(final) as tmp:
        (tmp / "figures").mkdir()
        for name, data in pngs.items():
            (tmp / "figures" / name).write_bytes(data)
        for i, src in enumerate(qa):
            shutil.copyfile(src, tmp / "figures" / f"registration_{i}_{src.stem.removeprefix('overlay_')}.png")
        (tmp / "tables").mkdir()
        for name, frame in tables.items():
            frame.to_csv(tmp / "tables" / f"{name}.csv", index=False)
        doc = {name: json.loads(frame.to_json(orient="records")) for name, frame in tables.items()}
        doc["answer"] = _json_safe(answer)
        write_json(tmp / "tables" / "tables.json", doc)
        context = {"run": run, "results": len(results), "expected": manifest.get("jobs", len(results)),
                   "answer": answer, "verdicts": verdict_table(answer), "searches": searches,
                   "failed": manifest.get("failed", []), "seed": plan.get("seed"), "plan": plan, "analysis": cfg,
                   "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        figure_files = [n for n in FIGURE_ORDER if n in pngs] + sorted(
            p.name for p in (tmp / "figures").iterdir() if p.name not in FIGURE_ORDER)
        (tmp / "report.md").write_text(_markdown(tables, context, figure_files))
        (tmp / "report.html").write_text(_html(tables, context, {n: (tmp / "figures" / n).read_bytes()
                                                                 for n in figure_files}))
        write_json(tmp / "manifest.json", {
            "schema_version": SCHEMA_VERSION, "stage": "report", "vdes_tune_version": __version__, "run": run,
            "inputs": {"results_sha256": hashlib.sha256(results_path.read_bytes()).hexdigest()[:16],
                       "predictions_sha256": (hashlib.sha256(predictions_path.read_bytes()).hexdigest()[:16]
                                              if predictions_path.is_file() else None),
                       "plan": plan.get("config")},
            "analysis": to_dict(cfg), "rows": len(results), "outputs": output_index(tmp), "complete": True,
        })
    workspace.push(final)
    # The report files as this machine can open them (the mirror, for a URI workspace).
    return {"output": workspace.location(final), "report_md": str(final / "report.md"),
            "report_html": str(final / "report.html"), "tables": tables, "rows": len(results),
            "answer": answer["sentence"], "answer_detail": answer}


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null; numpy scalars become Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FIGURE_ORDER = ("forest.png", "power.png", "f1_distribution.png", "calibration.png", "quality_vs_gain.png",
                "montage.png")
FIGURE_TITLES = {"forest.png": "The answer: paired differences with 95% intervals",
                 "power.png": "What would decide it: power against test patients (vdes-tune plan-study)",
                 "f1_distribution.png": "F1 over repeats per architecture",
                 "calibration.png": "Calibration of the malignant probability (test split, repeats pooled)",
                 "quality_vs_gain.png": "Image quality of each virtual DES against its classification gain",
                 "montage.png": "Same test crops: LE, LED, real DES and each virtual DES (cf. paper Figure 4)"}


def figure_title(name: str) -> str:
    """The caption of a report figure."""
    if name in FIGURE_TITLES:
        return FIGURE_TITLES[name]
    for suffix, title in search.SEARCH_TITLES.items():
        if name.endswith(suffix):
            return f"Search {name.removesuffix('-' + suffix)}: {title.lower()}"
    return f"Registration QA: {name.removesuffix('.png')}"


def _sections(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, explanation, table) of the statistics tables, in report order."""
    tests = tables["paired_tests"]
    shown_tests = tests[tests["metric"].isin(["test_f1", "test_accuracy"])] if len(tests) else tests
    cols = ["reference", "metric", "arch", "architecture", "mean", "reference_mean", "mean_diff", "diff_ci_low",
            "diff_ci_high", "statistic", "p_value", "p_holm", "rank_biserial", "cohens_dz", "pairs"]
    out = [
        ("Paired differences behind the answer", "Test F1, ROC-AUC, sensitivity and specificity of each architecture "
         "minus a reference (#3 real DES, #1 and #2 no DES), paired by repeat; 95% interval from the spread over "
         "repeats plus the patient-level bootstrap of the test crops (se_repeats, se_patients; se_interaction: a "
         "repeat's own test-sample noise, for planning); verdicts against the margin (vs real DES) or 0.",
         tables["answer"]),
        ("What would decide it (F1)", "Test patients for an 80% chance of a decisive verdict, each difference taken "
         "as the truth (evaluation/power.py; every metric and the whole frontier: `vdes-tune plan-study --json`); "
         "assurance: the CDD-CESM chance averaged over this run's uncertainty about the difference; cheapest: the "
         "fewest repeats whose test patients a 326-patient dataset's 15% test split holds.", tables["plan"]),
        ("Table 3: accuracy and F1 per architecture",
         "mean (sample std) [95% t confidence interval of the mean] over the repeats; test metrics are read at the "
         "epoch of best validation F1.", table3_display(tables["table3"])),
        ("Calibration", "Expected calibration error of the malignant probability on the test split (10 equal-width "
         "bins): mean over repeats with its 95% t interval, and pooled over repeats.", tables["calibration"]),
        ("Image quality of the virtual DES", "Against the real DES on the test split (images in [0, 1]; PSNR in dB): "
         "over the whole crop, and inside the annotated lesion regions (lesion_*), with the lesion's "
         "contrast-to-noise ratio on the virtual and the real DES.", tables["image_quality"]),
        ("Table 1: crops per split and class", "Patient-level, stratified splits of the ingested crops.",
         tables["table1"]),
        ("Table 2: search leaderboards", f"Best {LEADERBOARD_ROWS} trials of each search the configurations came "
         "from (objective: mean over its seeds of each seed's best-validation-epoch metric; every column in "
         "tables/table2.csv).", table2_display(tables["table2"])),
        ("Wilcoxon tests across repeats",
         "Wilcoxon signed-rank (two-sided) of each architecture against #3 (real DES) and #2 (no DES), paired by "
         "repeat (same data order and initialisation seed); mean_diff = architecture - reference with its 95% t "
         "interval; rank-biserial correlation and Cohen's d_z as effect sizes; p_holm: Holm-adjusted within each "
         "reference and metric. Validation metrics are in tables/paired_tests.csv.",
         shown_tests[[c for c in cols if c in shown_tests.columns]]),
    ]
    return [(t, x, f) for t, x, f in out
            if len(f) or not t.startswith(("Paired differences", "Calibration", "What would decide"))]


def _header(ctx: dict[str, Any]) -> str:
    plan = ctx["plan"]
    missing = ctx["expected"] - ctx["results"]
    status = "complete" if not missing else f"INCOMPLETE: {missing} job(s) missing"
    return (f"Run `{ctx['run']}`: {ctx['results']} of {ctx['expected']} jobs ({status}); base seed {ctx['seed']}; "
            f"configurations from {', '.join(plan['config'].get('configs') or ['the paper defaults'])}; "
            f"generated {ctx['created']}.")


def _method(ctx: dict[str, Any]) -> str:
    a, cfg = ctx["answer"], ctx["analysis"]
    if a.get("method") != "repeats and patients":
        return "Intervals over repeats only."
    return (f"Test split: {a['crops']} crops of {a['patients']} patients, {a['repeats']} paired repeats. Intervals: "
            f"{round(100 * cfg.confidence)}%, from the spread over repeats plus a {cfg.bootstrap}-draw patient-level "
            f"bootstrap (seed {cfg.seed}). Non-inferiority margins: {100 * cfg.margin:g} F1 points, "
            f"{100 * cfg.auc_margin:g} ROC-AUC points, {100 * cfg.rate_margin:g} points of sensitivity and of "
            f"specificity; no-DES reference #{cfg.no_des}; F1, sensitivity and specificity at probability "
            f"{cfg.threshold:g}.")


def _markdown(tables: dict[str, pd.DataFrame], ctx: dict[str, Any], figure_files: list[str]) -> str:
    parts = [f"# vdes-tune report: {ctx['run']}\n", f"**Answer.** {ctx['answer']['sentence']}\n",
             _method(ctx) + "\n", _header(ctx) + "\n"]
    if len(ctx["verdicts"]):
        parts.append(markdown_table(ctx["verdicts"]))
    parts.append("## Figures\n")
    for name in figure_files:
        parts.append(f"### {figure_title(name)}\n\n![{figure_title(name)}](figures/{name})\n")
    parts.append("## Tables\n\nEvery table is also in tables/ as CSV, and all of them in tables/tables.json.\n")
    for title, text, frame in _sections(tables):
        parts += [f"### {title}\n", text + "\n", markdown_table(frame) if len(frame) else "(none)\n"]
    return "\n".join(parts)


def _html(tables: dict[str, pd.DataFrame], ctx: dict[str, Any], images: dict[str, bytes]) -> str:
    parts = [f"<p class='answer'><b>Answer.</b> {html.escape(ctx['answer']['sentence'])}</p>"]
    if "forest.png" in images:
        parts.append(f"<figure>{img_tag(images['forest.png'], figure_title('forest.png'))}<figcaption>"
                     f"{html.escape(figure_title('forest.png'))}</figcaption></figure>")
    if len(ctx["verdicts"]):
        parts.append(ctx["verdicts"].to_html(index=False, escape=True))
    parts.append(f"<p class='meta'>{html.escape(_method(ctx))}<br>{html.escape(_header(ctx))}</p><h2>Figures</h2>")
    for name, data in images.items():
        if name == "forest.png":
            continue
        parts.append(f"<figure>{img_tag(data, figure_title(name))}<figcaption>{html.escape(figure_title(name))}"
                     f"</figcaption></figure>")
    parts.append("<h2>Tables</h2><p>Every table is also in tables/ as CSV, and all of them in tables/tables.json."
                 "</p>")
    for title, text, frame in _sections(tables):
        shown = frame.map(fmt) if len(frame) else frame
        parts.append(f"<details><summary>{html.escape(title)}</summary><p>{html.escape(text)}</p>"
                     + (shown.to_html(index=False, escape=True) if len(frame) else "<p>(none)</p>") + "</details>")
    return html_page(f"vdes-tune report: {ctx['run']}", "\n".join(parts))
