"""Pipelines: every shipped file loads, bad files name the stage and field, and the smoke pipeline runs
end to end (ingest, generators, search, export, pretrain, 3 x 6 evaluation, report), then resumes as a no-op, and a
plug-in generator (Pix2Pix, #7) goes through evaluation and report with no code of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sklearn.metrics import f1_score, roc_auc_score

from vdes_tune.cli import app
from vdes_tune.report.figures import montage_sources
from vdes_tune.report.render import find_browser, render
from vdes_tune.errors import BadInputError
from vdes_tune.pipeline import SHIPPED_DIR, load_pipeline
from vdes_tune.workspace import Workspace

runner = CliRunner()


@pytest.mark.parametrize("path", sorted(SHIPPED_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_pipeline_loads(path: Path) -> None:
    pipe = load_pipeline(path)
    kinds = [s.kind for s in pipe.stages]
    assert kinds[0] == "ingest" and kinds[-3:] == ["pretrain", "evaluate", "report"]
    assert {"generators", "search", "export"} <= set(kinds)
    # The pretrain stage carries its evaluation's settings: the generators it makes are the ones evaluate reads.
    (pretrain,), (evaluate,) = ([s for s in pipe.stages if s.kind == k] for k in ("pretrain", "evaluate"))
    assert pretrain.settings is evaluate.settings and pretrain.label == f"pretrain {evaluate.settings.run}"


@pytest.mark.parametrize("stages, message", [
    ([{"ingst": {}}], r"stages\[0\]: unknown stage 'ingst'"),
    ([{"ingest": {"crop_sise": 64}}], r"stages\[0\] \(ingest\).*crop_sise"),
    ([{"ingest": {}}, {"evaluate": {"repeats": 0}}], r"stages\[1\] \(evaluate\).*repeats"),
    ([{"search": {"space": "no_such_space"}}], r"stages\[0\] \(search\).*no_such_space"),
    ([{"generators": [{"model": "unet"}]}], r"stages\[0\] \(generators\).*needs a name"),
    ([{"export": {}}], r"stages\[0\] \(export\).*experiment"),
    ([{"evaluate": {"run": "r", "archs": [3, 4]}}], r"stages\[0\] \(evaluate\).*`- pretrain: \{run: r\}` before it"),
    ([{"evaluate": {"run": "r", "archs": [3, 4]}}, {"pretrain": {"run": "r"}}],
     r"stages\[1\] \(pretrain\).*no evaluate stage of run 'r' after it"),
    ([{"search": {"space": "paper_dropout", "max_concurent": 2}}], r"stages\[0\] \(search\).*max_concurent"),
])
def test_bad_pipelines_name_the_stage_and_field(tmp_path: Path, stages: list, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "stages": stages}))
    with pytest.raises(BadInputError, match=message):
        load_pipeline(path)


@pytest.fixture(scope="module")
def smoke_run(ray_local, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The smoke pipeline run once on the small dataset: (its workspace, the run's CLI result)."""
    work = tmp_path_factory.mktemp("smoke") / "work"
    return work, runner.invoke(app, ["run", "smoke", "--data", str(small_dataset), "--work", str(work), "--json"])


@pytest.mark.ray
@pytest.mark.slow
def test_smoke_pipeline_end_to_end_then_resumes_as_a_no_op(smoke_run, small_dataset: Path) -> None:
    work, first = smoke_run
    assert first.exit_code == 0, first.output[-3000:]
    stages = json.loads(first.output[first.output.index("[\n"):])
    assert [s["stage"] for s in stages] == ["ingest", "generators", "search", "export", "pretrain", "evaluate",
                                            "report"]
    assert not any(s.get("skipped") for s in stages)

    results = pd.read_parquet(work / "eval" / "smoke" / "results.parquet")
    assert len(results) == 18 and not results.duplicated(["arch", "repeat"]).any()
    assert sorted(results["arch"].unique()) == [1, 2, 3, 4, 5, 6]
    assert results.groupby("repeat")["seed"].nunique().eq(1).all()  # repeats are paired across architectures
    assert results.groupby("arch")["seed"].nunique().eq(3).all()

    report = work / "report" / "smoke"
    t3 = pd.read_csv(report / "tables" / "table3.csv").set_index("arch")
    assert list(t3.index) == [1, 2, 3, 4, 5, 6] and (t3["repeats"] == 3).all()
    by_hand = results.groupby("arch")["test_f1"]
    assert np.allclose(t3["test_f1_mean"], by_hand.mean()) and np.allclose(t3["test_f1_std"], by_hand.std(ddof=1))
    crops = pd.read_parquet(work / "dataset" / "crops.parquet")
    t1 = pd.read_csv(report / "tables" / "table1.csv").set_index("split")
    assert t1.loc["test", "total"] == (crops["split"] == "test").sum() and t1.loc["all", "total"] == len(crops)
    tests = pd.read_csv(report / "tables" / "paired_tests.csv")
    assert set(tests["reference"]) == {2, 3} and set(tests.loc[tests["reference"] == 3, "arch"]) == {1, 2, 4, 5, 6}
    quality = pd.read_csv(report / "tables" / "image_quality.csv").set_index("arch")
    assert sorted(quality.index) == [4, 5, 6] and (quality["psnr"] > 0).all()
    # Lesion-aware quality: the masks came through ingest and the shards, and every generator is measured in them.
    assert (quality["lesion_crops"] > 0).all() and np.isfinite(quality["lesion_psnr"]).all()
    assert (crops.loc[crops["pathology"] == "Normal", "lesion_fraction"] == 0).all()
    assert (crops.loc[crops["pathology"] != "Normal", "lesion_fraction"] > 0).mean() > 0.9
    assert len(pd.read_csv(report / "tables" / "table2.csv")) == 2  # the smoke search's two trials

    # Per-crop predictions: every job's val and test crops; they reproduce the job's own test metrics.
    predictions = pd.read_parquet(work / "eval" / "smoke" / "predictions.parquet")
    test_crops = crops[crops["split"] == "test"]
    assert len(predictions) == 18 * ((crops["split"] == "val").sum() + len(test_crops))
    by_job = results.set_index("job_id")
    for job, part in predictions[predictions["split"] == "test"].groupby("job_id"):
        assert set(part["crop_id"]) == set(test_crops["crop_id"])
        assert f1_score(part["label"], part["score"] >= 0.5, zero_division=0) == pytest.approx(by_job.loc[job, "test_f1"])
        assert roc_auc_score(part["label"], part["score"]) == pytest.approx(by_job.loc[job, "test_roc_auc"])

    md = (report / "report.md").read_text()
    doc = json.loads((report / "tables" / "tables.json").read_text())
    answer = doc["answer"]
    # The answer comes first and agrees with the per-repeat results computed here (#3 - #2 test F1).
    f1 = results.pivot_table(index="repeat", columns="arch", values="test_f1")
    assert answer["method"] == "repeats and patients" and answer["margin"] == 0.02 and answer["repeats"] == 3
    assert answer["real_gain"]["f1"]["diff"] == pytest.approx(float((f1[3] - f1[2]).mean()))
    assert answer["patients"] == test_crops["patient_id"].nunique()
    assert set(answer["verdicts"]) == {"4", "5", "6"}
    # plan-study projects the same answer: at the pilot's own size it gives back the pilot's interval.
    planned = runner.invoke(app, ["plan-study", "--work", str(work), "--run", "smoke", "--json"])
    assert planned.exit_code == 0, planned.output
    gain = answer["real_gain"]["f1"]
    (row,) = [r for r in json.loads(planned.output)["comparisons"]
              if (r["metric"], r["arch"], r["reference"]) == ("f1", 3, 2)]
    assert row["half_width"] == pytest.approx((gain["ci_high"] - gain["ci_low"]) / 2, rel=1e-6)
    assert (row["patients"], row["repeats"], row["horizon_patients"]) == (answer["patients"], 3, 49)
    assert row["cheapest"] in row["frontier"] + [None]
    (shown,) = [r for r in doc["plan"] if r["comparison"] == "#3 LE+LED+DES vs #2 LE+LED+LE"]
    needed = row["patients_needed_at_30"]
    assert shown["test patients at 30 repeats"] == ("none suffices" if needed is None else str(needed))
    spoken = runner.invoke(app, ["plan-study", "--work", str(work), "--run", "smoke", "--metric", "specificity"])
    assert spoken.exit_code == 0 and "specificity differences taken as the truth" in spoken.output
    wrong = runner.invoke(app, ["plan-study", "--work", str(work), "--run", "smoke", "--metric", "recall"])
    assert wrong.exit_code == 2 and "'recall' is not one of f1" in wrong.output
    # Sensitivity and specificity at the operating point, beside F1 and ROC-AUC, in every place the answer is.
    assert answer["metrics"] == ["f1", "roc_auc", "sensitivity", "specificity"]
    assert {c["metric"] for c in answer["comparisons"]} == set(answer["metrics"])
    assert "| #4 LE+LED+U-Net/PT | specificity |" in md
    assert md.index("**Answer.**") < md.index("## Figures") < md.index("## Tables")
    assert answer["sentence"] in md.split("## Figures")[0]
    assert md.index("forest.png") < md.index("montage.png")
    assert set(pd.read_csv(report / "tables" / "calibration.csv")["arch"]) == set(range(1, 7))
    for a in range(1, 7):
        assert re.search(rf"^\| #{a} \| [^|]+ \| 3 \|", md, re.M), f"#{a} missing from Table 3"
    html = (report / "report.html").read_text()
    sources = re.findall(r"<img[^>]*src='([^']+)'", html)
    assert len(sources) >= 6 and all(s.startswith("data:image/png;base64,") for s in sources)  # self-contained
    assert "LE+LED+CycleGAN" in html and "Wilcoxon" in html and html.count("<details>") >= 5
    assert html.index("class='answer'") < html.index("<h2>Figures</h2>") < html.index("<details>")
    assert "smoke_classifier_lr-search_history.png" in md  # the search behind the configurations, visualised


    searched = runner.invoke(app, ["report", "--work", str(work), "--search", "smoke_classifier_lr", "--json"])
    assert searched.exit_code == 0, searched.output[-3000:]
    found = json.loads(searched.output)
    assert found["trials"] == 2 and found["complete_trials"] == 2
    page = Path(found["report_html"])
    # Two trials of one parameter: no parallel coordinates, no importance, and the report says why.
    assert {p.name for p in (page.parent / "figures").iterdir()} == {"search_history.png"}
    assert "single parameter is 1 by definition" in found["importance_note"]
    search_md = (page.parent / "report.md").read_text()
    assert "no parallel-coordinates plot: 2 complete trial(s)" in search_md and "How sure the choice is" in search_md

    jobs = {p.name: p.stat().st_mtime_ns for p in (work / "eval" / "smoke" / "jobs").glob("*.json")}
    again = runner.invoke(app, ["run", "smoke", "--data", str(small_dataset), "--work", str(work), "--json"])
    assert again.exit_code == 0, again.output[-3000:]
    redo = {s["stage"]: s for s in json.loads(again.output[again.output.index("[\n"):])}
    assert all(redo[k]["skipped"] for k in ("ingest", "generators", "search", "pretrain", "evaluate"))
    assert {p.name: p.stat().st_mtime_ns for p in (work / "eval" / "smoke" / "jobs").glob("*.json")} == jobs

    # A generator the paper did not try, added by declaration only: Pix2Pix (#7) is trained, synthesised,
    # evaluated, answered, measured and shown by the same code paths as #4 and #6.
    tiny = {"epochs": 1, "batch_size": 8, "unet_width": 8, "unet_depth": 3, "disc_features": 8, "samples": 2}
    edits = [f"generators.pix2pix.{k}={v}" for k, v in tiny.items()]
    edits += ["train.classifier=resnet18", "train.epochs=1", "train.batch_size=8"]
    plug = runner.invoke(app, ["evaluate", "--work", str(work), "--run", "plugin", "--archs", "3,7",
                               "--repeats", "2", *[a for e in edits for a in ("--set", e)]])
    assert plug.exit_code == 0, plug.output[-3000:]
    plan = json.loads((work / "eval" / "plugin" / "plan.json").read_text())
    name = plan["vdes"]["7"]
    made = json.loads((work / "generators" / name / "manifest.json").read_text())
    assert made["config"]["model"] == "pix2pix" and made["config"]["unet_width"] == 8
    assert (work / "generators" / name / "discriminator.pt").is_file()
    # The pretrain stage alone, as `evaluate` ran it first: the same generator, found again, not retrained.
    again = runner.invoke(app, ["evaluate", "--work", str(work), "--run", "plugin", "--archs", "3,7", "--repeats", "2",
                                "--pretrain-only", "--json", *[a for e in edits for a in ("--set", e)]])
    assert again.exit_code == 0, again.output[-3000:]
    made = json.loads(again.output[again.output.index("{"):])
    assert made["skipped"] and made["generators"] == [{"arch": 7, "name": name, "model": "pix2pix", "trained": False}]
    plugged = runner.invoke(app, ["report", "--work", str(work), "--run", "plugin", "--json"])
    assert plugged.exit_code == 0, plugged.output[-3000:]
    doc = json.loads((work / "report" / "plugin" / "tables" / "tables.json").read_text())
    assert set(doc["answer"]["verdicts"]) == {"7"} and doc["answer"]["names"]["7"].endswith("LE+LED+Pix2Pix")
    assert list(pd.read_csv(work / "report" / "plugin" / "tables" / "table3.csv")["arch"]) == [3, 7]
    assert list(pd.read_csv(work / "report" / "plugin" / "tables" / "image_quality.csv")["arch"]) == [7]
    columns, _ = montage_sources(Workspace.at(work), plan, work / "eval" / "plugin")
    assert list(columns)[-1] == "#7 virtual DES"


@pytest.mark.ray
@pytest.mark.slow
def test_the_smoke_report_opens_in_a_real_browser(smoke_run) -> None:
    """A real browser opens the report: every image decodes, no script error, a screenshot of the page."""
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium-family browser on PATH (Debian: apt install chromium; .ci/run installs it)")
    work, first = smoke_run
    assert first.exit_code == 0, first.output[-3000:]
    report = work / "report" / "smoke"
    sources = re.findall(r"<img[^>]*src='([^']+)'", (report / "report.html").read_text())
    seen = render(report / "report.html", report / "screenshot.png", browser=browser)
    assert seen["ok"], seen
    assert seen["images"] == len(sources) >= 6 and (report / "screenshot.png").stat().st_size > 10_000
