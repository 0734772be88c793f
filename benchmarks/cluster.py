"""The same search on 1 and on 2 worker nodes of the local multi-node cluster; the speed-up against the ideal.

For each cluster size a fresh cluster is started with cluster/local.sh (a head node with 0 CPUs, so
no trial runs there, plus N worker nodes of 1 CPU each, every node its own `ray start`), the search
runs with `vdes-tune search <space> --address <gcs>` exactly as a user runs it, and the cluster is
stopped again. Only the search command is timed (not the cluster start, the dataset or the ingest).
Every run uses the same space, seed and workspace: a grid over 4 learning rates, resnet18, one seed
per trial, so the 4 trials are independent and equal in size and the ideal speed-up of 2 worker
nodes over 1 is 2.0. The trial results record the Ray node that ran each trial; the table shows how
many distinct nodes ran trials. Sizes are interleaved (1, 2, 1, 2, ...) when repeated.

    python benchmarks/cluster.py [--patients 16] [--crop-size 96] [--epochs 10] [--trials 4] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vdes_tune.config import IngestConfig, SynthConfig
from vdes_tune.phantom.dataset import write_dataset
from vdes_tune.runtime import free_ports, ray_session
from vdes_tune.search.export import leaderboard, load_experiment
from vdes_tune.stages import ingest
from vdes_tune.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "cluster" / "local.sh"
LRS = [1.0e-3, 5.0e-4, 2.0e-4, 1.0e-4, 5.0e-5, 2.0e-5, 1.0e-5, 5.0e-6]
SIZES = (1, 2)
IDEAL = 2.0


def _space(path: Path, args: argparse.Namespace) -> Path:
    if not 1 <= args.trials <= len(LRS):
        raise SystemExit(f"--trials must be between 1 and {len(LRS)}")
    data = {"name": "cluster_bench", "arch": 1, "metric": "val_f1", "mode": "max", "repeats": 1,
            "algorithm": "grid", "seed": 0,
            "fixed": {"train.classifier": "resnet18", "train.epochs": args.epochs, "train.batch_size": 16,
                      "train.dropout": 0.2},
            "parameters": {"train.lr": {"choice": LRS[:args.trials]}}}
    path.write_text(yaml.safe_dump(data))
    return path


def _env(state: Path) -> dict[str, str]:
    """Environment of the cluster script and of the search command: own state folder and free ports."""
    gcs, dashboard, agent = free_ports(3)
    return {**os.environ, "VDES_CLUSTER_DIR": str(state), "VDES_CLUSTER_PORT": str(gcs),
            "VDES_DASHBOARD_PORT": str(dashboard), "VDES_AGENT_PORT": str(agent), "VDES_HEAD_CPUS": "0", "VDES_WORKER_CPUS": "1",
            "RAY_AUTH_MODE": "disabled", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT)}


def _run_once(nodes: int, run: str, space: Path, work: Path, tmp: Path) -> dict:
    """Start a cluster of `nodes` worker nodes, time the search on it, stop the cluster (always)."""
    state = tmp / f"cluster-{run}"
    env = _env(state)
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start", str(nodes)], check=False, env=env,
                                 capture_output=True, text=True, timeout=180)
        if started.returncode != 0:
            raise RuntimeError(f"cluster start failed:\n{started.stderr[-3000:]}")
        address = started.stdout.strip().splitlines()[0]  # then the job-server URL
        cmd = [str(Path(sys.executable).parent / "vdes-tune"), "search", str(space), "--work", str(work),
               "--name", run, "--address", address]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"search failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], check=False, env=env, capture_output=True, timeout=120)
        shutil.rmtree(f"/tmp/vdes-ray-{env['VDES_CLUSTER_PORT']}", ignore_errors=True)  # Ray's logs of this run
    board = leaderboard(load_experiment(str(work / "search" / run)))
    finished = int((board["status"] == "TERMINATED").sum())
    return {"worker_nodes": nodes, "run": run, "wall_s": wall, "trials": len(board), "finished": finished,
            "nodes_used": int(board.loc[board["node_id"] != "", "node_id"].nunique()),
            "trial_seconds": [round(float(s), 1) for s in board["seconds"]]}


def _table(runs: list[dict]) -> list[dict]:
    """One row per cluster size: median wall time, speed-up over 1 worker node, ideal, efficiency."""
    walls = {n: [r["wall_s"] for r in runs if r["worker_nodes"] == n] for n in SIZES}
    base = statistics.median(walls[1])
    table = []
    for n in SIZES:
        wall = statistics.median(walls[n])
        speedup = base / wall
        ideal = float(n)
        trial_s = [s for r in runs if r["worker_nodes"] == n for s in r["trial_seconds"]]
        table.append({"worker_nodes": n, "wall_s": round(wall, 1), "runs_s": [round(w, 1) for w in walls[n]],
                      "speedup": round(speedup, 3), "ideal": ideal, "efficiency": round(speedup / ideal, 3),
                      "mean_trial_s": round(statistics.fmean(trial_s), 1),
                      "nodes_used": sorted({r["nodes_used"] for r in runs if r["worker_nodes"] == n})})
    return table


def _print(table: list[dict], args: argparse.Namespace) -> None:
    print(f"{args.trials} trials (grid over lr, resnet18, 1 seed), {args.epochs} epochs, {args.crop_size} px, "
          f"{args.patients} patients; head 0 CPUs, 1 CPU per worker node; median of {args.repeats} run(s)")
    print(f"{'worker nodes':>12} {'wall s':>8} {'runs s':>16} {'speed-up':>9} {'ideal':>6} {'efficiency':>10} "
          f"{'mean trial s':>12} {'nodes ran trials':>16}")
    for r in table:
        runs_s = ", ".join(f"{w:.1f}" for w in r["runs_s"])
        used = ", ".join(str(u) for u in r["nodes_used"])
        print(f"{r['worker_nodes']:>12} {r['wall_s']:>8.1f} {runs_s:>16} {r['speedup']:>8.2f}x {r['ideal']:>5.1f}x "
              f"{r['efficiency']:>10.2f} {r['mean_trial_s']:>12.1f} {used:>16}")


def main() -> None:
    """Run the search on each cluster size and print the speed-up table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=4, help="grid points (learning rates), one seed each")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each cluster size (interleaved)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = parser.parse_args()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        work = tmp / "work"
        with ray_session(num_cpus=2):  # ingest on a local Ray instance, gone before the clusters
            write_dataset(SynthConfig(patients=args.patients, size="small", seed=3), tmp / "raw")
            ingest.run(IngestConfig(crop_size=args.crop_size), Workspace.at(work), tmp / "raw")
        space = _space(tmp / "cluster_bench.yaml", args)
        for rep in range(args.repeats):
            for nodes in SIZES:
                row = _run_once(nodes, f"n{nodes}_r{rep}", space, work, tmp)
                print(f"[cluster] {nodes} worker node(s), repeat {rep}: {row['wall_s']:.1f} s, "
                      f"{row['finished']}/{row['trials']} trials on {row['nodes_used']} node(s)", flush=True)
                runs.append(row)
    bad = [r for r in runs if r["finished"] != args.trials]
    if bad:
        raise SystemExit(f"some trials did not finish: {bad}")
    table = _table(runs)
    _print(table, args)
    if args.json:
        print(json.dumps({"args": vars(args), "table": table, "runs": runs}))


if __name__ == "__main__":
    main()
