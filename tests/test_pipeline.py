"""Pipelines: every shipped file loads, bad files name the stage and field, and the smoke pipeline runs
end to end (ingest, generators, search, export, 3 x 6 evaluation, report), then resumes as a no-op."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from vdes_tune.cli import app
from vdes_tune.errors import BadInputError
from vdes_tune.pipeline import SHIPPED_DIR, load_pipeline

runner = CliRunner()


@pytest.mark.parametrize("path", sorted(SHIPPED_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_pipeline_loads(path: Path) -> None:
    pipe = load_pipeline(path)
    kinds = [s.kind for s in pipe.stages]
    assert kinds[0] == "ingest" and kinds[-2:] == ["evaluate", "report"]
    assert {"generators", "search", "export"} <= set(kinds)


@pytest.mark.parametrize("stages, message", [
    ([{"ingst": {}}], r"stages\[0\]: unknown stage 'ingst'"),
    ([{"ingest": {"crop_sise": 64}}], r"stages\[0\] \(ingest\).*crop_sise"),
    ([{"ingest": {}}, {"evaluate": {"repeats": 0}}], r"stages\[1\] \(evaluate\).*repeats"),
    ([{"search": {"space": "no_such_space"}}], r"stages\[0\] \(search\).*no_such_space"),
    ([{"generators": [{"model": "unet"}]}], r"stages\[0\] \(generators\).*needs a name"),
    ([{"export": {}}], r"stages\[0\] \(export\).*experiment"),
])
def test_bad_pipelines_name_the_stage_and_field(tmp_path: Path, stages: list, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "stages": stages}))
    with pytest.raises(BadInputError, match=message):
        load_pipeline(path)


@pytest.mark.ray
@pytest.mark.slow
def test_smoke_pipeline_end_to_end_then_resumes_as_a_no_op(ray_local, small_dataset: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = runner.invoke(app, ["run", "smoke", "--data", str(small_dataset), "--work", str(work), "--json"])
    assert first.exit_code == 0, first.output[-3000:]
    stages = json.loads(first.output[first.output.index("[\n"):])
    assert [s["stage"] for s in stages] == ["ingest", "generators", "search", "export", "evaluate", "report"]
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
    quality = pd.read_csv(report / "tables" / "image_quality.csv")
    assert sorted(quality["arch"]) == [4, 5, 6] and (quality["psnr"] > 0).all()
    assert len(pd.read_csv(report / "tables" / "table2.csv")) == 2  # the smoke search's two trials

    md = (report / "report.md").read_text()
    # The answer (real DES's gain over LE) comes first, and agrees with the results computed here.
    f1 = results.pivot_table(index="repeat", columns="arch", values="test_f1")
    gain = float((f1[3] - f1[1]).mean())
    doc = json.loads((report / "tables" / "tables.json").read_text())
    assert doc["answer"]["gain"]["mean_diff"] == pytest.approx(gain)
    assert f"changes test f1 by {100 * gain:+.1f} points" in md.split("## ")[0]
    for a in range(1, 7):
        assert re.search(rf"^\| #{a} \| [^|]+ \| 3 \|", md, re.M), f"#{a} missing from Table 3"
    html = (report / "report.html").read_text()
    sources = re.findall(r"<img[^>]*src='([^']+)'", html)
    assert len(sources) >= 3 and all(s.startswith("data:image/png;base64,") for s in sources)  # self-contained
    assert "LE+LED+CycleGAN" in html and "Wilcoxon" in html

    jobs = {p.name: p.stat().st_mtime_ns for p in (work / "eval" / "smoke" / "jobs").glob("*.json")}
    again = runner.invoke(app, ["run", "smoke", "--data", str(small_dataset), "--work", str(work), "--json"])
    assert again.exit_code == 0, again.output[-3000:]
    redo = {s["stage"]: s for s in json.loads(again.output[again.output.index("[\n"):])}
    assert all(redo[k]["skipped"] for k in ("ingest", "generators", "search", "evaluate"))
    assert {p.name: p.stat().st_mtime_ns for p in (work / "eval" / "smoke" / "jobs").glob("*.json")} == jobs
