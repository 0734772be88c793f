"""Resolving each architecture's configuration from exported best files, job seeds, and paired repeats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vdes_tune.config import EvaluateConfig, TrainConfig, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.evaluation.jobs import job_seed, make_jobs, resolve_configs
from vdes_tune.search.export import read_best_file


def write_best(path: Path, entries: dict[int, dict], metric: str = "val_f1") -> Path:
    """A best-configuration file as `vdes-tune export` writes it: full config, searched values, objective."""
    doc = {"format": 1, "experiment": path.stem, "metric": metric, "mode": "max", "architectures": {}}
    for arch, e in entries.items():
        searched = {"arch": arch, **{f"train.{k}": v for k, v in e["searched"].items()}}
        config = TrainConfig(**{"arch": arch, "epochs": 2, **e["searched"]})  # a fixed epochs=2 of the search
        doc["architectures"][arch] = {"config": to_dict(config), "searched": searched,
                                      "objective": {metric: e["score"]}}
    path.write_text(yaml.safe_dump(doc))
    return path


def test_searched_values_carry_over_by_rule(tmp_path):
    lr_search = write_best(tmp_path / "lr.yaml", {1: {"searched": {"classifier": "resnet34", "lr": 1e-4}, "score": 0.6}})
    unet_search = write_best(tmp_path / "unet.yaml", {
        5: {"searched": {"unet_width": 16, "unet_depth": 4, "lr": 5e-5}, "score": 0.7}})
    per_arch = write_best(tmp_path / "per_arch.yaml", {
        3: {"searched": {"dropout": 0.3}, "score": 0.9}, 2: {"searched": {"dropout": 0.1}, "score": 0.5}})
    cfg = EvaluateConfig(configs=(str(lr_search), str(unet_search), str(per_arch)), train={"epochs": 3})
    plans = resolve_configs(cfg, vdes={4: "unet-pt", 6: "cyclegan"})
    assert sorted(plans) == [1, 2, 3, 4, 5, 6]
    for a, plan in plans.items():
        c = plan.config
        assert c.arch == a and c.epochs == 3  # the search's fixed epochs=2 does not carry; train overrides
        assert c.classifier == "resnet34" and c.lr == 5e-5  # the later file wins
        # U-Net shape only where a U-Net is used
        assert (c.unet_width, c.unet_depth) == ((16, 4) if a in (4, 5) else (32, 6))
        # an architecture's own entry wins; others take the file's best entry (#3, score 0.9)
        assert c.dropout == (0.1 if a == 2 else 0.3)
    assert plans[4].config.vdes == "unet-pt" and plans[6].config.vdes == "cyclegan" and plans[1].config.vdes == ""
    assert plans[1].origin["lr"] == "unet (#5)" and plans[2].origin["dropout"] == "per_arch (#2)"
    assert plans[1].origin["epochs"] == "evaluate.train"


def test_paper_defaults_without_configs():
    plans = resolve_configs(EvaluateConfig(archs=(1, 3)))
    assert plans[1].config == TrainConfig(arch=1) and plans[3].config == TrainConfig(arch=3)


def test_jobs_are_paired_across_architectures_and_repeat_major():
    plans = resolve_configs(EvaluateConfig(archs=(1, 2, 3), repeats=4))
    jobs = make_jobs(plans, 4, base_seed=7)
    assert [(j.repeat, j.arch) for j in jobs[:4]] == [(0, 1), (0, 2), (0, 3), (1, 1)]
    assert len(jobs) == 12 and len({j.id for j in jobs}) == 12
    for r in range(4):
        assert {j.config.seed for j in jobs if j.repeat == r} == {job_seed(7, r)}
    seeds = [job_seed(7, r) for r in range(30)]
    assert len(set(seeds)) == 30 and seeds == [job_seed(7, r) for r in range(30)]
    assert job_seed(8, 0) != job_seed(7, 0)
    assert not set(job_seed(0, r) for r in range(30)) & set(range(30))  # never a search seed (train.seed + r)


@pytest.mark.parametrize("fields, named", [
    ({"archs": (1, 8)}, "archs"), ({"repeats": 0}, "repeats"), ({"vdes": {5: "x"}}, "vdes"),
    ({"train": {"seed": 3}}, "train"), ({"train": {"nope": 1}}, "nope"),
    ({"generators": {"unet": {"epochs": 0}}}, "generators.unet"), ({"generators": {"gan": {}}}, "generators"),
])
def test_bad_evaluate_configs_name_the_field(fields, named):
    with pytest.raises(BadInputError, match=named):
        EvaluateConfig(**fields)


def test_bad_best_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: 1\narchitectures: {1: {config: {lr: -1}}}\n")
    with pytest.raises(BadInputError, match=r"bad.yaml: architectures.1"):
        read_best_file(bad)
    (tmp_path / "old.yaml").write_text("format: 0\n")
    with pytest.raises(BadInputError, match="old.yaml: not a best-configuration file"):
        read_best_file(tmp_path / "old.yaml")


def test_repeat_k_shares_initialisation_and_data_order_across_architectures(search_work):
    from vdes_tune.training.classify import prepare_classification

    plans = resolve_configs(EvaluateConfig(archs=(1, 3), train={"classifier": "resnet18", "batch_size": 8}))
    jobs = make_jobs(plans, 2, base_seed=0)
    runs = {(j.arch, j.repeat): prepare_classification(j.config, search_work, device=torch.device("cpu"))
            for j in jobs}

    def weights(run):
        return torch.cat([p.detach().flatten() for p in run.task.classifier.parameters()])

    def first_labels(run):
        return next(iter(run.loaders["train"]))[1]

    assert torch.equal(weights(runs[1, 0]), weights(runs[3, 0]))
    assert torch.equal(first_labels(runs[1, 0]), first_labels(runs[3, 0]))
    assert not torch.equal(weights(runs[1, 0]), weights(runs[1, 1]))  # repeats differ


def test_pool_takes_the_hungriest_architectures_fraction_on_a_gpu_cluster(search_work, monkeypatch, tmp_path):
    import json
    import math

    from vdes_tune import gpus
    from vdes_tune.evaluation.repeats import EvalOptions, _pool_size
    from vdes_tune.training.memory import estimate, load_calibration, place
    from vdes_tune.workspace import Workspace

    cal_path = tmp_path / "cal.json"
    cal_path.write_text(json.dumps({"activation_factor": 1.0, "overhead_gb": 0.0, "source": "test"}))
    plans = resolve_configs(EvaluateConfig(archs=(1, 5), train={"classifier": "resnet18", "batch_size": 8}))
    cal = load_calibration(cal_path)
    est = {a: estimate(p.config, 64, cal).total for a, p in plans.items()}
    assert est[5] > est[1]  # #5 also trains a U-Net
    card_mib = math.ceil(est[5] / 1024 ** 2 / (0.9 * 0.295))  # #5 needs 0.30 of the card
    card = card_mib / 1024
    want = place(est[5], card, card).fraction
    assert want == 0.3
    # One node with two such cards, advertising their memory, and 16 CPUs.
    node = gpus.NodeGPUs("n", 2, card, 16, 2 * card_mib)
    monkeypatch.setattr(gpus, "cluster_nodes", lambda: [node])
    opts = EvalOptions(calibration=str(cal_path))
    actors, per_actor, packing = _pool_size(plans, Workspace.at(search_work), opts, jobs=100)
    mib = math.ceil(0.3 * card_mib)
    assert per_actor == {"CPU": 1.0, "GPU": want, "gpu_memory_mib": mib} and packing.card_gb == card
    assert actors == 6  # 3 per card (1 / 0.3), 2 cards; the node's memory holds 2 * card_mib // mib = 6 too
    assert _pool_size(plans, Workspace.at(search_work), opts, jobs=3)[0] == 3  # never more actors than jobs
    # A second node of one card that does not advertise its memory: shares of the paper's card, no memory asked.
    monkeypatch.setattr(gpus, "cluster_nodes", lambda: [node, gpus.NodeGPUs("m", 1, None, 16, 0)])
    actors, per_actor, packing = _pool_size(plans, Workspace.at(search_work), opts, jobs=100)
    assert packing.card_gb == 24.0 and per_actor == {"CPU": 1.0, "GPU": place(est[5], 24.0).fraction}
    monkeypatch.setattr(gpus, "cluster_nodes", lambda: [gpus.NodeGPUs("n", 1, card, 16, card_mib)])
    tight = EvalOptions(gpu_memory_gb=est[1] / 1024 ** 3, calibration=str(cal_path))
    with pytest.raises(BadInputError, match="architecture #5"):
        _pool_size(plans, Workspace.at(search_work), tight, jobs=4)
    # Without GPUs: actors by each node's CPUs (two per node: 3 CPUs at 1.5 each).
    monkeypatch.setattr(gpus, "cluster_nodes", lambda: [gpus.NodeGPUs("c", 0, None, 3), gpus.NodeGPUs("d", 0, None, 3)])
    cpu_only = EvalOptions(cpus_per_actor=1.5)
    assert _pool_size(plans, Workspace.at(search_work), cpu_only, jobs=100)[:2] == (4, {"CPU": 1.5, "GPU": 0.0})


def test_cli_bad_inputs_name_what_is_wrong(tmp_path):
    from typer.testing import CliRunner

    from vdes_tune.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["evaluate", "--work", str(tmp_path), "--configs", str(tmp_path / "nope.yaml")])
    assert isinstance(missing.exception, BadInputError) and "nope.yaml" in str(missing.exception)
    archs = runner.invoke(app, ["evaluate", "--work", str(tmp_path), "--archs", "1,x"])
    assert isinstance(archs.exception, BadInputError) and "--archs" in str(archs.exception)
    report = runner.invoke(app, ["report", "--work", str(tmp_path), "--run", "none"])
    assert isinstance(report.exception, BadInputError) and "eval/none" in str(report.exception)


def test_a_files_best_entry_skips_nan_objectives(tmp_path):
    best = read_best_file(write_best(tmp_path / "nan.yaml", {
        1: {"searched": {"lr": 1e-3}, "score": float("nan")}, 3: {"searched": {"lr": 1e-4}, "score": 0.4},
        5: {"searched": {"lr": 5e-5}, "score": 0.2}}))
    assert best.top().arch == 3
