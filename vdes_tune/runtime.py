"""Connecting to Ray: a private local instance bound to 127.0.0.1, or an existing cluster by address; free
local ports for clusters started on this machine."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from vdes_tune.errors import BadInputError


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, quiet: bool = False) -> Iterator[None]:
    """Use the running Ray if there is one, else start a local one (or join `address`) for the block."""
    import ray

    if address and num_cpus is not None:
        raise BadInputError("--num-cpus sizes a local Ray instance; with --address the cluster's own CPUs are used")
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
    kwargs = {"include_dashboard": False, "log_to_driver": not quiet, "logging_level": "warning"}
    if address:
        # `auto`, `host:port` or `ray://...`: resources belong to the cluster, not to this command.
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
    if quiet:
        _quiet_ray_data()
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """Ray Data's per-dataset progress logs drown a command's own output; keep its warnings."""
    import logging

    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (all held open while choosing, so none is handed out twice)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
