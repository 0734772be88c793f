"""Packing by GPU memory on the local multi-node cluster (cluster/local.sh) with logical GPUs and the
`gpu_memory_mib` resource each worker advertises: a worker with one 80 GiB card, one with one 24 GiB card,
one with two 24 GiB cards. Trials' resource requests are placed by Ray itself, as Tune places a trial's
placement group; which node and which card each one got is asked of Ray from inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from vdes_tune.runtime import free_ports

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "local.sh"
GIB_MIB = 1024
CARDS = {"worker_0": (1, 80 * GIB_MIB), "worker_1": (1, 24 * GIB_MIB), "worker_2": (2, 24 * GIB_MIB)}


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Head (no GPU) + the three GPU workers of CARDS; yields (address, env)."""
    state = tmp_path_factory.mktemp("gpu-cluster")
    gcs, dashboard, agent = free_ports(3)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}, "RAY_AUTH_MODE": "disabled",
           "VDES_CLUSTER_DIR": str(state), "VDES_CLUSTER_PORT": str(gcs), "VDES_DASHBOARD_PORT": str(dashboard),
           "VDES_AGENT_PORT": str(agent), "VDES_WORKER_CPUS": "4",
           "VDES_WORKER_GPUS": " ".join(f"{n}:{mib}" for n, mib in CARDS.values()),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    started = subprocess.run(["bash", str(SCRIPT), "start", "3"], env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield started.stdout.strip().splitlines()[0], env
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=60)


# Places as many trials of `estimate` GiB as the packing says the cluster holds, each in a placement group
# of the trial's request (as Tune does), then runs a task in each to ask Ray which node and card it holds.
PLACE = """
import json, sys, time
import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from vdes_tune.gpus import MEMORY_RESOURCE, cluster_nodes, packing_for, request, slots
from vdes_tune.training.memory import GIB, place

ray.init(address=sys.argv[1], logging_level="error")
deadline = time.monotonic() + 120
while len([n for n in cluster_nodes() if n.gpus]) != int(sys.argv[3]) and time.monotonic() < deadline:
    time.sleep(0.5)  # a killed node is marked dead by the GCS a few seconds later
nodes = [n for n in cluster_nodes() if n.gpus]
packing = packing_for(nodes)
where = place(int(float(sys.argv[2]) * GIB), packing.budget_gb, packing.card_gb)
ask = request(where.fraction, packing)
count = slots(nodes, ask, 0)
groups = [placement_group([ask]) for _ in range(count)]
ray.get([g.ready() for g in groups], timeout=120)
total = sum(n.memory_mib for n in nodes)
deadline = time.monotonic() + 60
while ray.available_resources().get(MEMORY_RESOURCE, 0) > total - count * ask[MEMORY_RESOURCE] + 0.5 \
        and time.monotonic() < deadline:
    time.sleep(0.2)  # the cluster's view of what is left catches up with the reservations

@ray.remote(num_cpus=0)
def held():
    return ray.get_runtime_context().get_node_id(), [str(i) for i in ray.get_gpu_ids()]

names = {r: n["NodeID"] for n in ray.nodes() if n["Alive"] for r in n["Resources"] if r.startswith("worker_")}
got = ray.get([held.options(num_gpus=ask["GPU"], resources={MEMORY_RESOURCE: ask[MEMORY_RESOURCE]},
                            scheduling_strategy=PlacementGroupSchedulingStrategy(g, 0)).remote() for g in groups])
left = ray.available_resources()
print(json.dumps({"card_gb": packing.card_gb, "budget_gb": packing.budget_gb, "fraction": where.fraction,
                  "ask": ask, "slots": count, "held": got, "names": names,
                  "left_gpu": left.get("GPU", 0.0), "left_mib": left.get(MEMORY_RESOURCE, 0.0)}))
"""


def _place(address: str, env: dict, estimate_gb: float, gpu_nodes: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PLACE, address, str(estimate_gb), str(gpu_nodes)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _per_node(found: dict) -> dict[str, int]:
    worker = {node: name for name, node in found["names"].items()}
    return dict(Counter(worker[node] for node, _ in found["held"]))


def test_trials_pack_by_each_cards_memory_across_mixed_nodes(gpu_cluster):
    address, env = gpu_cluster
    # A 10 GiB trial reserves 10 / 0.9 = 11.1 GiB. With two 24 GiB cards on one node, Ray's fill-one-card-first
    # cannot be steered by a node-wide memory request: fractions are shares of 24 GiB, 0.47 (ceil(46.3)/100).
    mixed = _place(address, env, 10.0, 3)
    assert (mixed["card_gb"], mixed["budget_gb"], mixed["fraction"]) == (24.0, 24.0, 0.47)
    assert mixed["ask"] == {"GPU": 0.47, "gpu_memory_mib": 11551.0}  # ceil(0.47 * 24 * 1024)
    # Two per 24 GiB card (1 / 0.47), and the 80 GiB card, packed as a 24 GiB one, two as well: 2 + 2 + 4.
    assert _per_node(mixed) == {"worker_0": 2, "worker_1": 2, "worker_2": 4} and mixed["slots"] == 8
    cards = Counter((node, tuple(ids)) for node, ids in mixed["held"])
    assert all(len(ids) == 1 for _, ids in mixed["held"]) and max(cards.values()) == 2 and len(cards) == 4
    assert mixed["left_gpu"] < mixed["fraction"]  # Ray agrees: no card has room for a ninth
    assert mixed["left_mib"] == (80 + 24 + 48) * GIB_MIB - 8 * 11551

    # Without the two-card node every node has one card: fractions are shares of the 80 GiB card, 0.14, and
    # the memory request keeps the 24 GiB node to what it holds: 7 on the 80 GiB card (where a share of 24
    # GiB gave 2), 2 on the 24 GiB one.
    subprocess.run(["bash", str(SCRIPT), "kill-node", "2"], env=env, check=True, capture_output=True)
    single = _place(address, env, 10.0, 2)
    assert (single["card_gb"], single["fraction"]) == (80.0, 0.14)
    assert single["ask"] == {"GPU": 0.14, "gpu_memory_mib": 11469.0}  # ceil(0.14 * 80 * 1024)
    assert _per_node(single) == {"worker_0": 7, "worker_1": 2} and single["slots"] == 9
    # Ray agrees nothing more fits: the memory left in the whole cluster is less than one trial's request.
    assert single["left_mib"] < single["ask"]["gpu_memory_mib"]
    assert single["left_mib"] == (80 + 24) * GIB_MIB - 9 * 11469
