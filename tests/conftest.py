"""Shared fixtures: one small synthetic dataset and one Ray instance per test session; process helpers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

import pytest

from vdes_tune.config import SynthConfig
from vdes_tune.runtime import free_ports


def pytest_configure(config: pytest.Config) -> None:
    """Point every S3 client of the session (Ray workers included, which inherit the environment) at a
    local test server with throwaway credentials: tests never reach a real bucket."""
    (port,) = free_ports(1)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 at AWS_ENDPOINT_URL for the whole session."""
    from moto.server import ThreadedMotoServer

    port = int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield os.environ["AWS_ENDPOINT_URL"]
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh, empty bucket: `s3://<name>`."""
    import pyarrow.fs as pafs

    name = f"vdes-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(endpoint_override=s3_server, region="us-east-1", allow_bucket_creation=True).create_dir(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-patient small synthetic CDD-CESM dataset with the naming quirks."""
    from vdes_tune.phantom.dataset import write_dataset

    out = tmp_path_factory.mktemp("raw") / "cdd"
    write_dataset(SynthConfig(patients=12, size="small", seed=7, quirks=True), out)
    return out


@pytest.fixture(scope="session")
def registration_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A larger small-size dataset (about 130 pairs) for registration accuracy."""
    from vdes_tune.phantom.dataset import write_dataset

    out = tmp_path_factory.mktemp("raw") / "reg"
    write_dataset(SynthConfig(patients=40, size="small", seed=11), out)
    return out


@pytest.fixture(scope="session")
def ray_local():
    """The session's Ray instance (2 CPUs, no dashboard, bound to 127.0.0.1)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="warning")
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ingested_small_run(ray_local, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The small dataset ingested at the default 224 crops: (workspace folder, the ingest's summary).
    Shared, so tests only read it; one that changes a workspace copies it first."""
    from vdes_tune.config import IngestConfig
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    work = tmp_path_factory.mktemp("trainwork")
    return work, ingest.run(IngestConfig(), Workspace.at(work), small_dataset)


@pytest.fixture(scope="session")
def ingested_small(ingested_small_run) -> Path:
    """Shards of the small dataset at the default 224 crops, for training tests (returns the workspace)."""
    return ingested_small_run[0]


@pytest.fixture(scope="session")
def search_work(ray_local, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Workspace with dataset/shards of 64 x 64 crops: search trials and evaluation jobs train in seconds."""
    from vdes_tune.config import IngestConfig
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    work = tmp_path_factory.mktemp("searchwork")
    ingest.run(IngestConfig(crop_size=64), Workspace.at(work), small_dataset)
    return work


def kill_when(cmd: list[str], ready: Callable[[], bool], env: dict | None = None, timeout: float = 300) -> None:
    """Run `cmd` in its own process group and SIGKILL the group (it and any Ray it started) as soon as `ready()`
    holds; waits on that state, never on a guess of the time, and fails if the command finished first."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.01)
        assert proc.poll() is None, f"{' '.join(cmd[2:5])} finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)  # reaped: a zombie would still look alive to the debris sweep
        wait_gone(proc.pid)


def wait_gone(pgid: int, timeout: float = 60) -> None:
    """Wait until a killed command's process group (it and the local Ray it started) is gone."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `gpu` where CUDA is absent (CI never has one)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
