"""What more GPU memory buys: the front on hand-built points, and in the export of a search that varies memory."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from scipy import stats

from vdes_tune.search.memory_front import front_lines, memory_front, varies_memory

# (width, memory GB, per-seed scores): the 64-wide point is the best but needs 30 GB; 32 is best under 24.
POINTS = [(4, 3.0, [0.60, 0.62, 0.61]), (16, 6.0, [0.66, 0.64, 0.65]), (8, 5.0, [0.58, 0.59, 0.60]),
          (32, 14.0, [0.70, 0.69, 0.72]), (64, 30.0, [0.74, 0.73, 0.77])]


def _points():
    return [{"values": {"train.unet_width": w}, "memory_gb": m, "scores": {str(i): v for i, v in enumerate(s)}}
            for w, m, s in POINTS]


def test_the_front_is_the_best_point_per_card_and_the_paired_gain_of_each_step():
    front = memory_front(_points(), "max", budgets=(4, 8, 16, 24, 40))
    assert [p["values"]["train.unet_width"] for p in front["pareto"]] == [4, 16, 32, 64]  # 8 is beaten by 4
    chosen = [s["best"]["values"]["train.unet_width"] if s["best"] else None for s in front["budgets"]]
    assert chosen == [4, 16, 32, 32, 64]
    best16 = front["budgets"][2]["best"]
    scores = POINTS[3][2]
    half = stats.t.ppf(0.975, 2) * np.std(scores, ddof=1) / np.sqrt(3)
    assert best16["mean"] == pytest.approx(statistics.fmean(scores))
    assert best16["ci95"] == pytest.approx([statistics.fmean(scores) - half, statistics.fmean(scores) + half])
    step = front["budgets"][4]["buys"]  # 24 -> 40 GB: width 64 over width 32, paired by seed
    diffs = [a - b for a, b in zip(POINTS[4][2], POINTS[3][2])]
    half = stats.t.ppf(0.975, 2) * np.std(diffs, ddof=1) / np.sqrt(3)
    assert step["mean_diff"] == pytest.approx(np.mean(diffs))
    assert step["diff_ci95"] == pytest.approx([np.mean(diffs) - half, np.mean(diffs) + half])
    assert front["budgets"][3]["buys"]["same_point"] and front["budgets"][0]["buys"] is None
    lines = front_lines(front, "val_f1")
    assert lines[3].endswith("the step up buys nothing (the same point)") and "unet_width=64 (30.00 GB)" in lines[4]


def test_a_card_nothing_fits_says_so_and_min_mode_prefers_lower():
    front = memory_front(_points(), "min", budgets=(2, 8))
    assert front["budgets"][0]["best"] is None and front_lines(front, "val_loss")[0] == "2 GB: no point fits"
    assert front["budgets"][1]["best"]["values"] == {"train.unet_width": 8}  # the lowest mean fitting 8 GB


def test_a_space_varies_the_memory_only_when_its_estimates_differ():
    assert varies_memory([2.4, 2.5, 3.4]) and not varies_memory([2.4, 2.45, 2.5]) and not varies_memory([3.0])


def test_export_writes_the_front_for_a_space_that_varies_memory(tmp_path, monkeypatch):
    import json

    import yaml

    from vdes_tune.search import export as ex
    from vdes_tune.search.space import parse_space
    from vdes_tune.search.storage import SIDECAR

    data = {"arch": 5, "metric": "val_f1", "algorithm": "grid", "repeats": 3,
            "parameters": {"train.unet_width": {"choice": [w for w, _, _ in POINTS]}}}
    space = parse_space(data, "s.yaml", name="widths")
    trials = [ex.TrialRecord(f"t{i}", "TERMINATED", {"train.unet_width": w},
                             {"val_f1": statistics.fmean(s), "feasible": 1, "epoch": 4, "memory_estimate_gb": m,
                              "seed_scores": {str(k): v for k, v in enumerate(s)}, "seed_epochs": 12})
              for i, (w, m, s) in enumerate(POINTS)]
    experiment = ex.Experiment(str(tmp_path / "search" / "widths"), {"experiment": "widths"}, space, trials)
    (tmp_path / "search" / "widths").mkdir(parents=True)
    (tmp_path / "search" / "widths" / SIDECAR).write_text(json.dumps({"experiment": "widths", "space": data}))
    monkeypatch.setattr(ex, "load_experiment", lambda path: experiment)  # the experiment without a Tune run
    out = ex.export("widths", tmp_path)
    doc = yaml.safe_load((tmp_path / "best" / "widths.yaml").read_text())
    assert [s["budget_gb"] for s in doc["memory_front"]["budgets"]] == [8, 12, 16, 24, 40, 80]
    assert doc["memory_front"]["budgets"][-1]["best"]["values"] == {"train.unet_width": 64}
    assert len(out["memory_front"]) == 6 and out["memory_front"][0].startswith("8 GB: unet_width=16")
