"""The CUDA-only paths of a trial, checked without a GPU: the per-process memory cap's arithmetic, the seeds
that wait off the device while another trains, and a trial that runs out of GPU memory reporting the
penalty instead of failing (its out-of-memory error faked)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vdes_tune.gpus import Packing
from vdes_tune.search import trainable
from vdes_tune.search.space import load_space
from vdes_tune.training.memory import GIB, place, process_share

from .conftest import write_space


def test_the_per_process_cap_is_the_planned_share_of_the_device_it_runs_on():
    # Half of a 24 GiB packing card is 12 GiB: 0.15 of an 80 GiB device, 0.75 of a 16 GiB one, capped at all of it.
    assert process_share(0.5, 24.0, 80 * GIB) == pytest.approx(0.15)
    assert process_share(0.5, 24.0, 16 * GIB) == pytest.approx(0.75)
    assert process_share(1.0, 24.0, 16 * GIB) == 1.0
    assert process_share(0.125, 24.0, 24 * GIB) == pytest.approx(0.125)  # the packing card itself: the fraction
    with pytest.raises(ValueError):
        process_share(0.5, 24.0, 0)


class _Device:
    """Stands for torch.device: `type` as torch's, constructible from a name."""

    def __init__(self, name: str) -> None:
        self.type = name


class _Task:
    def __init__(self, log: list, name: int) -> None:
        self.log, self.name, self.where = log, name, "cpu"

    def to(self, device: _Device) -> None:
        self.where = device.type
        self.log.append((self.name, device.type))


class _Fitter:
    def __init__(self, log: list, name: int, epochs: int) -> None:
        self.task, self.log, self.name, self.left = _Task(log, name), log, name, epochs

    @property
    def done(self) -> bool:
        return self.left == 0

    def step(self) -> dict:
        self.log.append((self.name, "step on " + self.task.where))
        self.left -= 1
        return {"val": {"f1": 0.5}}


def test_seeds_wait_off_the_gpu_while_another_trains():
    log: list = []
    fitters = [_Fitter(log, s, epochs=2) for s in range(3)]
    step = trainable._stepper(fitters, _Device("cuda"))
    step()
    step()
    assert all(f.done for f in fitters)
    # Every step runs on the device, and each seed leaves it before the next arrives: one seed's memory at a time.
    assert [e for e in log if e[1].startswith("step")] == [(s, "step on cuda") for s in (0, 1, 2)] * 2
    on = set()
    for name, where in log:
        if where in ("cuda", "cpu"):
            on = on | {name} if where == "cuda" else on - {name}
            assert len(on) <= 1
    assert all(f.task.where == "cpu" for f in fitters)
    # One seed, or the CPU: nothing is moved.
    single: list = []
    trainable._stepper([_Fitter(single, 0, 1)], _Device("cuda"))()
    assert single == [(0, "step on cpu")]


def test_a_trial_out_of_gpu_memory_reports_the_penalty_and_returns(monkeypatch, tmp_path):
    import ray
    from ray import tune

    from vdes_tune.training.engine import Fitter

    class FakeOOM(RuntimeError):
        """Stands for torch.cuda.OutOfMemoryError."""

    rows = [{"f1": 0.6, "roc_auc": 0.7, "loss": 0.5, "accuracy": 0.7, "macro_f1": 0.6}] * 4

    def fitters(ctx, cfg, placement, seeds):
        made = [Fitter(trainable._ReplayTask(rows), [], [None], None, 4, keep_best_state=False) for _ in seeds]
        first, calls = made[0].step, []

        def step():  # the second epoch of the first seed runs out of memory
            calls.append(1)
            if len(calls) == 2:
                raise FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")
            return first()
        made[0].step = step
        return made, None

    reports: list[dict] = []
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(get_node_id=lambda: "node-1"))
    monkeypatch.setattr(trainable, "_oom_error", lambda: FakeOOM)
    monkeypatch.setattr(trainable, "_live_fitters", fitters)
    space = load_space(write_space(tmp_path / "oom.yaml", parameters={"train.lr": {"choice": [1e-3]}}))
    monkeypatch.setattr(trainable, "plan_point", lambda ctx, point: (
        space.train_config(point), SimpleNamespace(total_gb=3.0), place(3 * GIB, 24.0)))
    ctx = trainable.TrialContext(space, str(tmp_path), 64, Packing(24.0, 24.0), True, 1.0, None)
    trainable.run_trial({"train.lr": 1e-3}, ctx)  # returns: the trial fails alone, Tune goes on

    assert [r["feasible"] for r in reports] == [1, 0]
    last = reports[-1]
    assert last[space.metric] == ctx.penalty == 0.0 and last["oom"] == 1
    assert last["gpu_fraction"] == place(3 * GIB, 24.0).fraction and last["node_id"] == "node-1"
