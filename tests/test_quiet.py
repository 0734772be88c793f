"""Quiet by default: Ray's own output goes to the workspace log, to the terminal only with -v; the Ray actor
pools are made so that Ray has nothing to warn about; and a local Ray instance keeps token authentication on
without warning about it on every run (the only test here that starts Ray, in subprocesses)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from vdes_tune import runtime
from vdes_tune.cli import app


@pytest.fixture
def terminal() -> Iterator[io.StringIO]:
    """A stand-in for the terminal: a stream handler on the `ray` logger, as Ray's own one is."""
    screen = io.StringIO()
    handler = logging.StreamHandler(screen)
    logger = logging.getLogger("ray")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield screen
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_ray_warnings_go_to_the_log_file_not_the_terminal_by_default(tmp_path: Path, terminal: io.StringIO) -> None:
    log = tmp_path / "logs" / "stage.log"
    with runtime.ray_output(log, verbose=False):
        logging.getLogger("ray.data.dataset").warning("cluster has no available CPUs")
        logging.getLogger("ray.tune").error("a trial failed for real")
    assert "no available CPUs" in log.read_text()
    assert "no available CPUs" not in terminal.getvalue()
    assert "a trial failed for real" in terminal.getvalue()  # errors still reach the terminal
    logging.getLogger("ray").warning("after the block")
    assert "after the block" in terminal.getvalue()  # the terminal handler is left as it was


def test_verbose_shows_ray_warnings_and_still_records_them(tmp_path: Path, terminal: io.StringIO) -> None:
    log = tmp_path / "stage.log"
    with runtime.ray_output(log, verbose=True):
        logging.getLogger("ray").warning("progress bars disabled")
    assert "progress bars disabled" in terminal.getvalue()
    assert "progress bars disabled" in log.read_text()


def test_warnings_raised_in_ray_go_to_the_log_and_others_are_shown(tmp_path: Path) -> None:
    import ray
    from ray.util.annotations import RayDeprecationWarning

    log = tmp_path / "stage.log"
    ray_file = str(Path(ray.__file__).parent / "_private" / "worker.py")
    shown: list[str] = []
    before = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with runtime.ray_output(log, verbose=False):
            warnings.showwarning(FutureWarning("Tip: in future versions of Ray"), FutureWarning, ray_file, 1)
            warnings.showwarning(UserWarning("your crops are tiny"), UserWarning, __file__, 1)
            # Ray's deprecation notices point at the caller (our code), yet are Ray's: to the log too.
            warnings.showwarning(RayDeprecationWarning("`ray_remote_args` is deprecated"), RayDeprecationWarning,
                                 __file__, 1)
    finally:
        warnings.showwarning = before
    assert "in future versions of Ray" in log.read_text() and "`ray_remote_args` is deprecated" in log.read_text()
    assert shown == ["your crops are tiny"]


def test_ray_data_progress_bars_are_off_by_default_and_restored(tmp_path: Path) -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = True
    try:
        with runtime.ray_output(tmp_path / "a.log", verbose=False):
            assert ctx.enable_progress_bars is False
        with runtime.ray_output(tmp_path / "b.log", verbose=True):
            assert ctx.enable_progress_bars is True
        assert ctx.enable_progress_bars is True
    finally:
        ctx.enable_progress_bars = before


def test_worker_output_goes_to_the_log_instead_of_the_terminal() -> None:
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    saved = list(dispatcher.handlers)
    printed: list[Any] = []
    dispatcher.handlers = [("ray_print_logs", printed.append)]
    stream = io.StringIO()
    try:
        runtime._worker_output_to(stream, terminal=False)
        dispatcher.emit({"pid": 7, "actor_name": "EvalActor", "lines": ["epoch 1 loss 0.5"], "is_err": False})
        assert stream.getvalue() == "(EvalActor pid=7) epoch 1 loss 0.5\n" and printed == []
        runtime._worker_output_to(None, terminal=False)
        assert dispatcher.handlers == []
    finally:
        dispatcher.handlers = saved


def test_the_global_verbose_option_is_set_per_invocation() -> None:
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["-v", "models", "list", "--json"]).exit_code == 0
        assert runtime.is_verbose()
        assert runner.invoke(app, ["models", "list", "--json"]).exit_code == 0
        assert not runtime.is_verbose()
    finally:
        runtime.set_verbose(False)


class _Stop(Exception):
    """Ends a mocked Ray call once its arguments are recorded."""


def test_the_synthesizer_pool_is_not_restartable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray Data passes its actors object-store refs; with restarts Ray logs an alarming error."""
    import ray

    from vdes_tune.data import shards

    seen: dict[str, Any] = {}

    class FakeDataset:
        def select_columns(self, columns: list[str]) -> "FakeDataset":
            return self

        def map_batches(self, fn: Any, **kwargs: Any) -> "FakeDataset":
            seen.update(kwargs)
            return self

        def materialize(self) -> None:
            raise _Stop

    monkeypatch.setattr(ray.data, "read_parquet", lambda *a, **k: FakeDataset())
    kwargs = {"weights": "/w/generators/unet/weights.pt", "cfg": {"model": "unet"}, "device": "cpu"}
    with pytest.raises(_Stop):
        shards.synthesize("/w/dataset/shards", "/w/vdes/x", object, kwargs, 32, 1, 0, 100)
    assert seen["max_restarts"] == 0
    assert seen["fn_constructor_kwargs"] == kwargs  # a path, not weights: small and inline


def test_ingest_builds_its_dataset_without_tasks_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_pandas runs a task per frame up front; Ray Data then finds no free CPU and warns 'will hang'."""
    import pandas as pd
    import ray

    from vdes_tune.config import IngestConfig
    from vdes_tune.data import shards

    def no_from_pandas(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("from_pandas starts tasks before the dataset runs")

    made: dict[str, Any] = {}

    def fake_from_items(items: list[dict[str, int]], **kwargs: Any) -> Any:
        made.update(ids=[item["id"] for item in items], **kwargs)
        dataset = SimpleNamespace(materialize=lambda: "materialised")
        dataset.map_batches = lambda fn, **kw: made.update(fn_kwargs=kw["fn_kwargs"]) or dataset
        return dataset

    monkeypatch.setattr(ray.data, "from_pandas", no_from_pandas)
    monkeypatch.setattr(ray.data, "from_items", fake_from_items)
    pairs = pd.DataFrame({"pair_id": ["P1_L_CC", "P1_L_MLO", "P2_R_CC"]}, index=[5, 9, 11])
    assert shards.process_pairs(pairs, IngestConfig(), set()) == "materialised"
    assert made["ids"] == [0, 1, 2] and made["override_num_blocks"] == 2
    assert list(made["fn_kwargs"]["pairs"].index) == [0, 1, 2]  # the positions the ids select


def test_the_evaluation_pool_passes_small_args_and_no_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from vdes_tune.evaluation import repeats

    seen: dict[str, Any] = {}

    class FakeActorClass:
        def options(self, **kwargs: Any) -> "FakeActorClass":
            seen["options"] = kwargs
            return self

        def remote(self, *args: Any) -> None:
            seen["args"] = args
            raise _Stop

    monkeypatch.setattr(ray, "remote", lambda cls: FakeActorClass())
    with pytest.raises(_Stop):
        repeats.run_pool([], SimpleNamespace(spec="/w"), Path("/w/eval/main"), SimpleNamespace(save_weights="best"),
                         {"CPU": 1.0, "GPU": 0.0}, 1, 24.0, 3, on_result=lambda r: None)
    assert seen["options"]["max_restarts"] == 0
    assert all(isinstance(a, (str, int, float)) for a in seen["args"])


LOCAL_RAY = """
import os
from vdes_tune.runtime import ray_session
with ray_session(num_cpus=1):
    import ray
    ray.get(ray.remote(lambda: 1).remote())
print("mode", os.environ.get("RAY_AUTH_MODE"))
"""


def test_a_local_ray_keeps_token_auth_and_never_warns_of_it(tmp_path: Path) -> None:
    # RAY_AUTH_MODE unset, as a user runs vdes-tune; a fresh HOME, so the first run makes ~/.ray/auth_token and
    # the second finds it (Ray 2.60 warned "Token authentication is enabled ..." on every run from then on).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for run in (1, 2):
        done = subprocess.run([sys.executable, "-c", LOCAL_RAY], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "authentication" not in (done.stdout + done.stderr).lower(), (run, done.stderr[-2000:])
        assert "mode token" in done.stdout and (tmp_path / ".ray" / "auth_token").is_file()
