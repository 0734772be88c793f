"""Against a real multi-node Ray cluster on this machine (cluster/local.sh: a head and 2 worker nodes,
each its own `ray start`): an evaluation and a search run with --address across the nodes, and each
survives a worker node's raylet being SIGKILLed mid-run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "local.sh"


def _free_ports(n: int) -> list[int]:
    """n distinct free ports (all held open while choosing, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Head (1 CPU) + 2 worker nodes (1 CPU each); yields (address, env for drivers and the script)."""
    state = tmp_path_factory.mktemp("cluster")
    gcs, dashboard = _free_ports(2)
    ports = {"VDES_CLUSTER_PORT": str(gcs), "VDES_DASHBOARD_PORT": str(dashboard)}
    env = {**os.environ, "VDES_CLUSTER_DIR": str(state), **ports,
           "RAY_AUTH_MODE": "disabled", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    started = subprocess.run(["bash", str(SCRIPT), "start", "2"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        address = started.stdout.strip().splitlines()[0]  # then the job-server URL
        env["NODE_IDS"] = _node_ids(address, env)
        yield address, env
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=60)


NODES = """
import json, ray
ray.init(address="{address}", logging_level="error")
print(json.dumps({{r: n["NodeID"] for n in ray.nodes() if n["Alive"] for r in n["Resources"] if r.startswith("worker_")}}))
"""


def _node_ids(address: str, env: dict) -> str:
    """JSON {"worker_0": node id, ...}: which Ray node each worker of the script is."""
    out = subprocess.run([sys.executable, "-c", NODES.format(address=address)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(ids) == 2, ids
    return json.dumps(ids)


def _kill_node(env: dict, k: int) -> None:
    out = subprocess.run(["bash", str(SCRIPT), "kill-node", str(k)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _wait(proc: subprocess.Popen, until, deadline: float) -> None:
    while time.monotonic() < deadline and proc.poll() is None and not until():
        time.sleep(0.1)


def test_ray_job_submit_of_a_small_pipeline_lands_in_the_workspace(cluster, small_dataset, tmp_path):
    address, env = cluster
    dashboard = (Path(env["VDES_CLUSTER_DIR"]) / "dashboard").read_text().strip()
    pipeline = tmp_path / "tiny.yaml"
    pipeline.write_text(
        "name: tiny\nstages:\n"
        "  - ingest: {crop_size: 64, qa_samples: 1}\n"
        "  - evaluate: {run: tiny, archs: [1, 3], repeats: 2, train: {classifier: resnet18, epochs: 1, batch_size: 8}}\n"
        "  - report: {run: tiny}\n")
    work = tmp_path / "work"
    cmd = ["ray", "job", "submit", "--address", dashboard, "--working-dir", str(ROOT), "--",
           "vdes-tune", "run", str(pipeline), "--data", str(small_dataset), "--work", str(work), "--address", "auto"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "succeeded" in done.stdout + done.stderr
    results = pd.read_parquet(work / "eval" / "tiny" / "results.parquet")
    assert sorted(zip(results["arch"], results["repeat"])) == [(1, 0), (1, 1), (3, 0), (3, 1)]
    assert (work / "report" / "tiny" / "report.html").is_file()


def test_evaluation_across_nodes_survives_a_killed_worker_node(cluster, search_work):
    address, env = cluster
    out = search_work / "eval" / "multinode"
    cmd = [sys.executable, "-m", "vdes_tune", "evaluate", "--work", str(search_work), "--archs", "1,2",
           "--repeats", "4", "--run", "multinode", "--address", address, "--set=train.classifier=resnet18",
           "--set=train.epochs=2", "--set=train.batch_size=8"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Three actors, one per node: once three jobs run at once, one of them is on worker 1.
    _wait(proc, lambda: len(list((out / "running").glob("*.json"))) >= 3, time.monotonic() + 180)
    assert proc.poll() is None, f"the evaluation ended before three jobs ran at once: {proc.stderr.read()[-3000:]}"
    _kill_node(env, 1)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 8 and not results.duplicated(["arch", "repeat"]).any()
    assert results["node_id"].nunique() >= 2  # the work was spread over the nodes
    assert (results["attempt"] == 2).sum() >= 1  # the job on the lost node ran again elsewhere


def test_search_across_nodes_resumes_trials_of_a_killed_worker_node(cluster, search_work, tmp_path):
    from ray.tune import ExperimentAnalysis

    from tests.search.conftest import write_space

    address, env = cluster
    space = write_space(tmp_path / "multinode.yaml", parameters={"train.lr": {"choice": [1.0e-3, 5.0e-4, 1.0e-4]}},
                        fixed={"train.classifier": "resnet18", "train.epochs": 8, "train.batch_size": 8})
    exp = search_work / "search" / "multinode"
    cmd = [sys.executable, "-m", "vdes_tune", "search", str(space), "--work", str(search_work), "--address", address,
           "--max-failures", "3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def reported() -> list[dict]:
        rows = []
        for f in exp.glob("trial_*/result.json"):
            rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        return rows

    # Kill worker 0 (worker 1 died in the evaluation test) once a trial running there has reported (and
    # checkpointed) an epoch and is not done.
    victim = json.loads(env["NODE_IDS"])["worker_0"]

    def on_victim() -> bool:
        rows = reported()
        last = {r["trial_id"]: r for r in rows}
        return any(r["node_id"] == victim and r["epoch"] < 8 for r in last.values())

    _wait(proc, on_victim, time.monotonic() + 240)
    assert proc.poll() is None, "no trial was running on worker 0"
    _kill_node(env, 0)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    trials = ExperimentAnalysis(str(exp)).trials
    assert len(trials) == 3 and all(t.status == "TERMINATED" and t.last_result["epoch"] == 8 for t in trials)
    rows = reported()
    assert len({r["node_id"] for r in rows}) >= 2
    moved = [t for t in trials if victim in {r["node_id"] for r in rows if r["trial_id"] == t.trial_id}
             and t.last_result["node_id"] != victim]
    assert moved, "no trial moved off the killed node"
    for t in moved:  # resumed from its last checkpoint on another node, not restarted from epoch 1
        epochs = [r["epoch"] for r in rows if r["trial_id"] == t.trial_id]
        assert epochs.count(1) == 1 and epochs[-1] == 8
