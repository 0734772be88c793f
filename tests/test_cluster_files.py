"""Every file in cluster/ parses, and the fields that must agree do: Ray versions (with the installed
Ray and the package pin), ports, GPU resources, token auth, dashboard binding and the job entrypoint."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
RAY_VERSION = ray.__version__


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def test_the_package_pins_the_ray_the_files_use():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("ray["))
    major_minor = ".".join(RAY_VERSION.split(".")[:2])
    assert f">={major_minor}" in pin and f"<{major_minor.split('.')[0]}.{int(major_minor.split('.')[1]) + 1}" in pin
    assert re.search(rf"^FROM rayproject/ray:{re.escape(RAY_VERSION)}-py311-gpu$",
                     (CLUSTER / "Dockerfile").read_text(), re.M)


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_ray_up_configs_agree(name):
    cfg = _load(name)
    assert cfg["provider"]["type"] == name.removesuffix(".yaml")
    assert cfg["docker"]["image"] == f"rayproject/ray:{RAY_VERSION}-py311-gpu"
    nodes = cfg["available_node_types"]
    assert cfg["head_node_type"] in nodes and "GPU" not in nodes[cfg["head_node_type"]]["resources"]
    workers = [n for k, n in nodes.items() if k != cfg["head_node_type"]]
    assert workers and all(n["resources"].get("GPU") == 1 for n in workers)
    # Each GPU worker advertises its card's memory (MiB), so trials pack by it: about 22.5 GiB for these cards.
    assert all(22 * 1024 < n["resources"].get("gpu_memory_mib", 0) < 24 * 1024 for n in workers)
    assert cfg["max_workers"] >= max(n["max_workers"] for n in workers)
    head = " ".join(cfg["head_start_ray_commands"])
    port = re.search(r"--port=(\d+)", head).group(1)
    worker = " ".join(cfg["worker_start_ray_commands"])
    assert f"--address=$RAY_HEAD_IP:{port}" in worker
    assert "--dashboard-host=127.0.0.1" in head
    for command in (head, worker):
        assert "RAY_AUTH_MODE=token ray start" in command
    assert "/home/ray/.ray/auth_token" in cfg["file_mounts"]  # the same token on every node
    assert any("pip install" in c and "/home/ray/vdes-tune" in c for c in cfg["setup_commands"])
    if name == "gcp.yaml":
        gpu = next(n for n in workers)["node_config"]
        assert gpu["guestAccelerators"][0]["acceleratorCount"] == 1
        assert gpu["scheduling"][0]["onHostMaintenance"] == "TERMINATE"


def _containers(spec: dict) -> list[tuple[str, dict]]:
    out = [("head", c) for c in spec["headGroupSpec"]["template"]["spec"]["containers"]]
    for group in spec["workerGroupSpecs"]:
        out += [("worker", c) for c in group["template"]["spec"]["containers"]]
    return out


@pytest.mark.parametrize("name", ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml"])
def test_kuberay_manifests_agree(name):
    doc = _load(name)
    assert doc["apiVersion"] == "ray.io/v1"
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == RAY_VERSION
    for role, c in _containers(spec):
        env = {e["name"]: e for e in c["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "vdes-ray-token"
        assert c["resources"]["limits"] == c["resources"]["requests"]
        gpus = c["resources"]["limits"].get("nvidia.com/gpu", 0)
        assert gpus == (1 if role == "worker" else 0)
        assert any(m["mountPath"] == "/workspace" for m in c["volumeMounts"])
    ports = {p["name"]: p["containerPort"] for p in _containers(spec)[0][1]["ports"]}
    assert ports["gcs-server"] == 6379 and ports["dashboard"] == 8265
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        # KubeRay passes `resources` to `ray start` as a quoted JSON string: the card's memory, in MiB.
        advertised = json.loads(json.loads(group["rayStartParams"]["resources"]))
        assert 22 * 1024 < advertised["gpu_memory_mib"] < 24 * 1024
    if doc["kind"] == "RayJob":
        args = shlex.split(doc["spec"]["entrypoint"])
        assert args[:2] == ["vdes-tune", "run"] and args[2].endswith("pipelines/paper.yaml")
        assert (ROOT / "pipelines" / "paper.yaml").is_file()
        flags = dict(zip(args[3::2], args[4::2]))
        assert flags["--address"] == "auto"
        assert flags["--work"].startswith("/workspace/") and flags["--data"].startswith("/workspace/")
        submitter = doc["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
        assert {e["name"] for e in submitter["env"]} == {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def test_local_cluster_script_is_valid_bash_and_documents_itself():
    script = CLUSTER / "local.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "start [N]" in usage.stderr and "kill-node K" in usage.stderr
