"""benchmarks/gpu_check.py --dry-run: the GPU check's code runs on the CPU at tiny sizes (a logical GPU for the
packing), so the one command works the day a GPU comes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vdes_tune.training.memory import load_calibration

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_runs_every_step(search_work, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(search_work / "dataset", work / "dataset")
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out),
                           "--work", str(work)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads((out / "gpu_check.json").read_text())
    assert not [n for n in ("calibration", "packed_search", "throughput", "paper_job", "projection") if "error" in found[n]]
    cal = load_calibration(out / "memory_calibration.json")  # a file `search --calibration` accepts
    assert cal.activation_factor > 0 and len(found["calibration"]["rows"]) == 8
    packed = found["packed_search"]
    assert (packed["finished"], packed["errored"], packed["oom"], len(packed["trials"])) == (4, 0, 0, 4)
    assert packed["fraction_sum"] <= 1 and packed["widest_share"] <= 1  # never more than one GPU's worth at once
    assert packed["most_at_once"] >= 2  # the trials did share the (logical) GPU
    assert [r["model"] for r in found["throughput"]["rows"]][-1] == "#5 resnet18 + U-Net/EE 32/6"
    assert all(r["images_per_s"] > 0 for r in found["throughput"]["rows"])
    assert packed["packing"]["card_gb"] == 24.0 and packed["packing"]["by_memory"]  # the memory the node advertised
    job = found["paper_job"]
    # The split repeated to the requested sizes, every epoch run, its generator and virtual DES made and timed.
    assert job["job_crops"] == {"train": 24, "val": 8, "test": 8} and job["epochs_run"] == job["epochs"] == 2
    assert job["epoch_s"] > 0 and job["generator_epoch_s_per_crop"] > 0 and job["synthesis_s_per_crop"] > 0
    plan = found["projection"]
    assert plan["one_trial_per_gpu_hours"] == pytest.approx(sum(p["hours"] for p in plan["parts"]))
    assert plan["packed_hours"] == pytest.approx(plan["one_trial_per_gpu_hours"] / packed["speedup"])
    # The timed job scales the throughput-only projection by its own pace against the throughput's.
    assert plan["one_trial_per_gpu_hours"] == pytest.approx(plan["throughput_only_hours"] * plan["job_factor"])
    text = (out / "gpu_check.md").read_text()
    assert "Packed search on one 24 GiB card: 4 trials" in text and "Evaluation job #4 on cpu: 24/8/8 crops" in text
