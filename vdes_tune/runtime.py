"""Connecting to Ray: a private local instance bound to 127.0.0.1, or an existing cluster by address; where
Ray's own output goes (the workspace log, and the terminal only with --verbose); free local ports for
clusters started on this machine."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, TextIO

from vdes_tune.errors import BadInputError

# Ray's loggers that print to the terminal; `ray.data` has handlers of its own and does not propagate.
RAY_LOGGERS = ("ray", "ray.data")
LOG_FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"  # Ray's own
_WORKER_HANDLER = "vdes_tune_log"  # our entry in Ray's dispatcher of worker stdout/stderr
_verbose = False


def set_verbose(flag: bool) -> None:
    """Show Ray's own logs, warnings, progress bars and worker output on the terminal (the CLI's -v)."""
    global _verbose
    _verbose = flag


def is_verbose() -> bool:
    """Whether Ray's own output goes to the terminal as well as to the log file."""
    return _verbose


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, log_dir: Path | None = None,
                name: str = "ray") -> Iterator[None]:
    """Use the running Ray if there is one, else start a local one (or join `address`) for the block.

    Ray's logs, warnings and worker output go to `<log_dir>/<name>-<time>.log` (when given), and to the
    terminal only when verbose; Ray's errors always reach the terminal."""
    import ray

    if address and num_cpus is not None:
        raise BadInputError("--num-cpus sizes a local Ray instance; with --address the cluster's own CPUs are used")
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
    log_file = log_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log" if log_dir else None
    # A Ray client (ray://) streams worker output its own way: there it is shown with -v or not at all.
    route_workers = log_file is not None and not str(address or "").startswith("ray://")
    kwargs = {"include_dashboard": False, "log_to_driver": _verbose or route_workers,
              "logging_level": "info" if _verbose else "warning"}
    if _verbose and log_file:
        print(f"[ray] Ray's own output is shown and recorded in {log_file}", file=sys.stderr, flush=True)
    # Connect first, import Ray Data after: a driver of `ray job submit` that imports ray.data before
    # ray.init loses the job's working_dir (the package's own modules then fail to import).
    if address:
        # `auto`, `host:port` or `ray://...`: resources belong to the cluster, not to this command.
        ray.init(address=address, **kwargs)
    else:
        from vdes_tune.gpus import local_cards_mib, node_resources

        if "RAY_AUTH_MODE" not in os.environ:
            # Ray 2.60 turns token authentication on for a new local instance when RAY_AUTH_MODE is unset, and
            # warns so on every run. Turning it on first, as Ray itself does (the variable and its cached
            # config), keeps it on (a token is made once, in ~/.ray) without the warning. An explicit
            # RAY_AUTH_MODE (disabled, in the tests) is left as it is.
            from ray._private.authentication.authentication_token_setup import _enable_token_auth

            _enable_token_auth()
        # This machine's GPU memory, advertised as a cluster node would, so trials pack by the real card.
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1",
                 resources=node_resources(local_cards_mib()) or None, **kwargs)
    with ray_output(log_file, _verbose) as stream:
        if stream and route_workers:
            _worker_output_to(stream, terminal=_verbose)
        try:
            yield
        except Exception as exc:
            if log_file and not _verbose and not isinstance(exc, BadInputError):
                print(f"Ray's own log of this run: {log_file} (or re-run with -v)", file=sys.stderr, flush=True)
            raise
        finally:
            ray.shutdown()
            _worker_output_to(None, terminal=_verbose)


class _ErrorsOnly(logging.Filter):
    """Lets only errors through to the terminal: Ray's info and warnings are kept for the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def ray_output(log_file: Path | None, verbose: bool) -> Iterator[TextIO | None]:
    """Route Ray's loggers, Ray's Python warnings and Ray Data's progress bars for the block: all to
    `log_file` (when given; yields its stream), and to the terminal only when `verbose` (errors always)."""
    import ray.data  # noqa: F401  (its import configures the `ray.data` logger; configure after it)
    from ray.data import DataContext

    file_handler: logging.FileHandler | None = None
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(logging.INFO)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
    stream = file_handler.stream if file_handler else None
    loggers = [logging.getLogger(n) for n in RAY_LOGGERS]
    # Ray's handlers that print (to stderr); its Ray Data session-file handler is not one of them.
    terminal = [h for lg in loggers for h in lg.handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    only_errors = _ErrorsOnly()
    showwarning = warnings.showwarning
    if file_handler:
        for lg in loggers:
            lg.addHandler(file_handler)
    if not verbose:
        for h in terminal:
            h.addFilter(only_errors)
        warnings.showwarning = _ray_warnings_to(stream, showwarning)
    ctx = DataContext.get_current()  # after the hook: making it warns of Ray's own deprecated options
    progress = ctx.enable_progress_bars
    # Progress bars draw on stderr directly, not through logging: off, unless asked for.
    ctx.enable_progress_bars = progress if verbose else False
    try:
        yield stream
    finally:
        warnings.showwarning = showwarning
        ctx.enable_progress_bars = progress
        for h in terminal:
            h.removeFilter(only_errors)
        if file_handler:
            for lg in loggers:
                lg.removeHandler(file_handler)
            file_handler.close()


def _ray_warnings_to(stream: TextIO | None, show: Any) -> Any:
    """A `warnings.showwarning` that sends Ray's warnings (raised in Ray's code, or Ray's deprecation
    notices, which point at their caller) to `stream`, dropped when there is none; others are shown."""
    import ray
    from ray.util.annotations import RayDeprecationWarning

    ray_dir = str(Path(ray.__file__).parent)

    def showwarning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                    line: str | None = None) -> None:
        if not (str(filename).startswith(ray_dir) or issubclass(category, RayDeprecationWarning)):
            show(message, category, filename, lineno, file, line)
        elif stream is not None and not stream.closed:
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))
            stream.flush()

    return showwarning


def _worker_output_to(stream: TextIO | None, terminal: bool) -> None:
    """Copy workers' stdout/stderr (what `log_to_driver` streams to the driver) to `stream`, and leave it on
    the terminal only when `terminal`; `stream=None` removes the copy. Uses Ray's dispatcher of those lines
    (Ray is pinned in pyproject), skipped where it is missing."""
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
        from ray._private.worker import filter_autoscaler_events
    except ImportError:
        return
    dispatcher.remove_handler(_WORKER_HANDLER)
    if stream is None:
        return
    if not terminal:
        dispatcher.remove_handler("ray_print_logs")  # Ray's own printer of worker lines on the terminal

    def to_log(data: dict[str, Any]) -> None:
        who = f"{data.get('actor_name') or data.get('task_name') or ''} pid={data.get('pid')}".strip()
        lines = data.get("lines", [])
        if data.get("pid") == "autoscaler":
            lines = filter_autoscaler_events(lines)  # its events, not its status table every 5 s
        if not stream.closed:
            stream.writelines(f"({who}) {line}\n" for line in lines)
            stream.flush()

    dispatcher.add_handler(_WORKER_HANDLER, to_log)


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
