"""report/<run>/: the paper's tables with statistics (CSV and JSON), figures, report.md and a
self-contained report.html, from an evaluation's results and the artifacts that made it."""

from __future__ import annotations

import base64
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
from vdes_tune.errors import BadInputError
from vdes_tune.evaluation import figures, stats
from vdes_tune.workspace import SCHEMA_VERSION, Workspace, atomic_dir, read_manifest, write_json

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


def image_quality(workspace: Workspace, plan: dict[str, Any], results: pd.DataFrame) -> pd.DataFrame:
    """PSNR, SSIM, MSE (and L1) of each virtual DES against the real DES on the test split: the pre-trained
    generators' best epoch (#4, #6) and the mean over repeats of #5's co-trained U-Net."""
    rows = []
    for arch, name in sorted(plan.get("vdes", {}).items()):
        made = read_manifest(workspace.vdes(name)) or {}
        gen = workspace.generator(str(made.get("name", name)))
        metrics_file = gen / "metrics.json"
        if not metrics_file.is_file():
            continue
        found = json.loads(metrics_file.read_text())
        test = found.get("test") or {}
        rows.append({"arch": int(arch), "generator": f"{found.get('model', '?')} ({gen.name})", "split": "test",
                     "n": test.get("n"), "repeats": 1, **{k: test.get(k) for k in ("psnr", "ssim", "mse", "l1")}})
    e2e = results[results["arch"] == 5] if "image_psnr" in results.columns else results.iloc[0:0]
    if len(e2e):
        rows.append({"arch": 5, "generator": "unet (end-to-end, per repeat)", "split": "test", "n": None,
                     "repeats": len(e2e), **{k: float(e2e[f"image_{k}"].mean()) for k in ("psnr", "ssim", "mse", "l1")}})
    return pd.DataFrame(rows, columns=["arch", "generator", "split", "n", "repeats", "psnr", "ssim", "mse", "l1"])


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown_table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A DataFrame as a Markdown table with compact numbers."""
    cols = columns or list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in cols) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines) + "\n"


def table2_display(t2: pd.DataFrame) -> pd.DataFrame:
    """Table 2 narrowed for reading: ranks, the searched values and the objective (the CSV has every column)."""
    keep = ["experiment", "rank", "trial_id", "status", "feasible", "arch"]
    keep += [c for c in t2.columns if c.startswith("train.")]
    metric = next((c for c in t2.columns if c.endswith("_std")), "")
    keep += [metric.removesuffix("_std"), metric, "test_f1", "epochs", "memory_estimate_gb"] if metric else []
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


def build(work: str | Path, run: str = "main") -> dict[str, Any]:
    """Write report/<run>/ from eval/<run>/; returns the paths and the tables."""
    workspace = Workspace.at(work)
    eval_dir = workspace.pull(workspace.evaluation(run))
    results_path = eval_dir / "results.parquet"
    if not results_path.is_file() or not (eval_dir / "plan.json").is_file():
        raise BadInputError(f"{eval_dir}: no evaluation results (run `vdes-tune evaluate --run {run}` first)")
    results = pd.read_parquet(results_path)
    if results.empty:
        raise BadInputError(f"{results_path}: no finished job yet")
    plan = json.loads((eval_dir / "plan.json").read_text())
    workspace.pull(workspace.dataset.root)  # what the tables and figures read, for a URI workspace
    for name in plan.get("vdes", {}).values():
        made = read_manifest(workspace.pull(workspace.vdes(name))) or {}
        workspace.pull(workspace.generator(str(made.get("name", name))))
    manifest = read_manifest(eval_dir) or {}
    tables = {"table1": table1(workspace), "table2": table2(plan), "table3": stats.table3(results),
              "paired_tests": stats.paired_tests(results), "image_quality": image_quality(workspace, plan, results)}
    answer = answer_of(results)
    pngs = {"f1_distribution.png": figures.f1_distribution(results)}
    columns, labels = figures.montage_sources(workspace, plan, eval_dir)
    pngs["montage.png"] = figures.montage(columns, labels)
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
        doc["answer"] = json.loads(json.dumps(answer, default=float).replace("NaN", "null"))
        write_json(tmp / "tables" / "tables.json", doc)
        context = {"run": run, "results": len(results), "expected": manifest.get("jobs", len(results)),
                   "answer": answer["sentence"],
                   "failed": manifest.get("failed", []), "seed": plan.get("seed"), "plan": plan,
                   "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        figure_files = sorted(p.name for p in (tmp / "figures").iterdir())
        (tmp / "report.md").write_text(_markdown(tables, context, figure_files))
        (tmp / "report.html").write_text(_html(tables, context, {n: (tmp / "figures" / n).read_bytes()
                                                                 for n in figure_files}))
        write_json(tmp / "manifest.json", {
            "schema_version": SCHEMA_VERSION, "stage": "report", "vdes_tune_version": __version__, "run": run,
            "inputs": {"results_sha256": hashlib.sha256(results_path.read_bytes()).hexdigest()[:16],
                       "plan": plan.get("config")},
            "rows": len(results), "complete": True,
        })
    workspace.push(final)
    # The report files as this machine can open them (the mirror, for a URI workspace).
    return {"output": workspace.location(final), "report_md": str(final / "report.md"),
            "report_html": str(final / "report.html"), "tables": tables, "rows": len(results),
            "answer": answer["sentence"]}


def answer_of(results: pd.DataFrame) -> dict[str, Any]:
    """The study's answer on test F1: real DES's gain over LE and the share each virtual DES recovers."""
    names = {int(a): f"#{int(a)} {n}" for a, n in results.groupby("arch")["arch_name"].first().items()}
    gain = stats.des_gain(results)
    return {**gain, "sentence": stats.answer_sentence(gain, names)}


def _sections(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, explanation, table) in report order."""
    tests = tables["paired_tests"]
    shown_tests = tests[tests["metric"].isin(["test_f1", "test_accuracy"])] if len(tests) else tests
    cols = ["reference", "metric", "arch", "architecture", "mean", "reference_mean", "mean_diff", "diff_ci_low",
            "diff_ci_high", "statistic", "p_value", "p_holm", "rank_biserial", "cohens_dz", "pairs"]
    return [
        ("Table 1: crops per split and class", "Patient-level, stratified splits of the ingested crops.",
         tables["table1"]),
        ("Table 2: search leaderboards", f"Best {LEADERBOARD_ROWS} trials of each search the configurations came "
         "from (objective: mean over its seeds of each seed's best-validation-epoch metric; every column in "
         "tables/table2.csv).", table2_display(tables["table2"])),
        ("Table 3: accuracy and F1 per architecture",
         "mean (sample std) [95% t confidence interval of the mean] over the repeats; test metrics are read at the "
         "epoch of best validation F1.", table3_display(tables["table3"])),
        ("Paired tests across repeats",
         "Wilcoxon signed-rank (two-sided) of each architecture against #3 (real DES) and #2 (no DES), paired by "
         "repeat (same data order and initialisation seed); mean_diff = architecture - reference with its 95% t "
         "interval; rank-biserial correlation and Cohen's d_z as effect sizes; p_holm: Holm-adjusted within each "
         "reference and metric. Validation metrics are in tables/paired_tests.csv.",
         shown_tests[[c for c in cols if c in shown_tests.columns]]),
        ("Image quality of the virtual DES", "Against the real DES on the test split (images in [0, 1]; PSNR in dB).",
         tables["image_quality"]),
    ]


FIGURE_TITLES = {"f1_distribution.png": "F1 over repeats per architecture",
                 "montage.png": "Same test crops: LE, LED, real DES and each virtual DES (cf. paper Figure 4)"}


def _header(ctx: dict[str, Any]) -> str:
    plan = ctx["plan"]
    missing = ctx["expected"] - ctx["results"]
    status = "complete" if not missing else f"INCOMPLETE: {missing} job(s) missing"
    return (f"Run `{ctx['run']}`: {ctx['results']} of {ctx['expected']} jobs ({status}); base seed {ctx['seed']}; "
            f"configurations from {', '.join(plan['config'].get('configs') or ['the paper defaults'])}; "
            f"generated {ctx['created']}.")


def _markdown(tables: dict[str, pd.DataFrame], ctx: dict[str, Any], figure_files: list[str]) -> str:
    parts = [f"# vdes-tune report: {ctx['run']}\n", _header(ctx) + "\n", f"**Answer.** {ctx['answer']}\n"]
    for title, text, frame in _sections(tables):
        parts += [f"## {title}\n", text + "\n", markdown_table(frame) if len(frame) else "(none)\n"]
    parts.append("## Figures\n")
    for name in figure_files:
        title = FIGURE_TITLES.get(name, f"Registration QA: {name.removesuffix('.png')}")
        parts.append(f"### {title}\n\n![{title}](figures/{name})\n")
    return "\n".join(parts)


def _html(tables: dict[str, pd.DataFrame], ctx: dict[str, Any], images: dict[str, bytes]) -> str:
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
             "th{background:#f3f3f3}img{max-width:100%}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>vdes-tune report: {html.escape(ctx['run'])}"
             f"</title><style>{style}</style></head><body>",
             f"<h1>vdes-tune report: {html.escape(ctx['run'])}</h1><p>{html.escape(_header(ctx))}</p>",
             f"<p><b>Answer.</b> {html.escape(ctx['answer'])}</p>"]
    for title, text, frame in _sections(tables):
        shown = frame.map(_fmt) if len(frame) else frame
        parts += [f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>",
                  shown.to_html(index=False, escape=True) if len(frame) else "<p>(none)</p>"]
    parts.append("<h2>Figures</h2>")
    for name, data in images.items():
        title = FIGURE_TITLES.get(name, f"Registration QA: {name.removesuffix('.png')}")
        parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{base64.b64encode(data).decode()}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
