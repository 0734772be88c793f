"""The evaluation pool under failure: an actor SIGKILLed mid-job and then the driver SIGKILLed mid-run;
re-running completes with exactly one result per job and the same numbers an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import wait_gone
from vdes_tune.config import EvaluateConfig
from vdes_tune.errors import BadInputError
from vdes_tune.evaluation.jobs import Job, JobRunner, make_jobs, resolve_configs
from vdes_tune.evaluation.repeats import EvalOptions, Progress, evaluate

pytestmark = pytest.mark.ray
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
TRAIN = {"classifier": "resnet18", "epochs": 2, "batch_size": 8}


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_killed_driver_resumes_and_killed_actor_is_replaced_exactly_once(search_work):
    run = "killed"
    out = search_work / "eval" / run
    cmd = [sys.executable, "-m", "vdes_tune", "evaluate", "--work", str(search_work), "--archs", "1,2",
           "--repeats", "3", "--run", run, "--actors", "2", *[f"--set=train.{k}={v}" for k, v in TRAIN.items()]]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None and len(list((out / "jobs").glob("*.json"))) < 2:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the command and the local Ray it started, mid-run
        proc.wait()
    finally:
        wait_gone(proc.pid)
    done_before = {p.name: p.read_text() for p in (out / "jobs").glob("*.json")}
    assert 2 <= len(done_before) < 6, sorted(done_before)

    # Re-run; the first job to start has its actor SIGKILLed mid-job.
    victim: dict = {}
    rerun = time.time()
    watch_until = time.monotonic() + 300  # its own deadline: the first phase's time is not taken from it

    def kill_first_job() -> None:
        while not victim and time.monotonic() < watch_until:
            # Records of the killed run linger until the re-run clears them: only this run's jobs count.
            try:
                records = list((out / "running").glob("*.json"))
            except FileNotFoundError:  # the re-run is removing the folder right now
                records = []
            started = [r for r in map(_read, records) if r and r["attempt"] == 1 and r["started"] >= rerun]
            if started:
                victim.update(started[0])
                os.kill(victim["pid"], signal.SIGKILL)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_first_job, daemon=True)
    watcher.start()
    cfg = EvaluateConfig(archs=(1, 2), repeats=3, train=TRAIN)
    summary = evaluate(cfg, search_work, EvalOptions(run=run, actors=2, progress=False), log=lambda m: None)
    watcher.join(timeout=5)
    assert victim, "no job was running to kill"
    assert summary["failed"] == {} and summary["ran"] == 6 - len(done_before)
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 6 and not results.duplicated(["arch", "repeat"]).any()
    assert sorted(zip(results["arch"], results["repeat"])) == [(a, r) for a in (1, 2) for r in range(3)]
    for name, text in done_before.items():  # finished jobs were not trained again
        assert (out / "jobs" / name).read_text() == text
    retried = json.loads((out / "jobs" / f"{victim['job_id']}.json").read_text())
    assert retried["attempt"] == 2  # the same job ran again in the restarted actor

    # The retried job's numbers are those of an uninterrupted run of the same job.
    job = next(j for j in make_jobs(resolve_configs(cfg), 3, 0) if j.id == victim["job_id"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # actors run single-threaded: same kernels, same numbers
    try:
        fresh = JobRunner(str(search_work), "fresh", "cpu", "none").run(
            Job.from_dict(job.to_dict()))
    finally:
        torch.set_num_threads(threads)
    assert fresh["val"] == pytest.approx(retried["val"]) and fresh["test"] == pytest.approx(retried["test"])
    assert fresh["best_epoch"] == retried["best_epoch"]


def test_progress_eta_follows_the_session_pace():
    class Clock:
        now = 100.0

    progress = Progress(total=10, done=4, enabled=False)
    progress.start = Clock.now
    assert progress.eta_s(now=110.0) is None  # nothing finished in this session yet
    progress.update()
    progress.update()
    # 2 jobs in 20 s -> 10 s a job; 4 left
    assert progress.eta_s(now=120.0) == pytest.approx(40.0)
    assert "6/10 jobs" in progress.line()


@pytest.mark.ray
def test_an_evaluation_never_trains_a_generator_itself(search_work: Path) -> None:
    """#4 reads a U-Net/PT the pretrain stage makes: evaluate names it and the stage, and writes nothing."""
    from vdes_tune.evaluation.jobs import generator_needs

    cfg = EvaluateConfig(archs=(3, 4), repeats=1, train=TRAIN, generators={"unet": {"epochs": 1}})
    (need,) = generator_needs(cfg).values()
    assert need.arch == 4 and need.config.model == "unet" and need.name.startswith("unet-")
    with pytest.raises(BadInputError, match=rf"#4 reads the virtual DES of generator {need.name}.*pretrain"):
        evaluate(cfg, search_work, EvalOptions(run="no-pretrain", progress=False), log=lambda m: None)
    assert not (search_work / "generators" / need.name).exists()
    assert not (search_work / "eval" / "no-pretrain" / "plan.json").exists()
