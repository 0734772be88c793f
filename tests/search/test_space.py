"""Search-space files: every shipped one loads; bad ones fail with exit 2 naming file and field."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from vdes_tune.errors import BadInputError
from vdes_tune.search.space import SHIPPED_DIR, load_space, parse_space

SHIPPED = sorted(SHIPPED_DIR.glob("*.yaml"))


def test_the_four_required_spaces_are_shipped():
    assert {p.stem for p in SHIPPED} >= {"paper_classifier_lr", "paper_unet_width_depth", "paper_dropout", "joint"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_space_loads_and_makes_valid_configs(path):
    space = load_space(path)
    for point in space.points(8):
        cfg = space.train_config(point)
        for key, value in point.items():
            assert getattr(cfg, key.split(".")[-1]) == value
    assert space.epochs >= 1 and space.size >= 1


def test_paper_grids_enumerate_exactly():
    lr = load_space("paper_classifier_lr")
    assert lr.arch == (1,) and lr.strategy.repeats == 30
    assert sorted((p["train.classifier"], p["train.lr"]) for p in lr.grid()) == sorted(
        itertools.product(["resnet18", "resnet34", "regnety_016"], [1e-3, 5e-4, 1e-4]))
    wd = load_space("paper_unet_width_depth")
    assert {(p["train.unet_width"], p["train.unet_depth"]) for p in wd.grid()} == set(
        itertools.product([4, 8, 12, 16, 32, 64], range(2, 8)))
    assert len(wd.grid()) == 36
    drop = load_space("paper_dropout")
    assert len(drop.grid()) == 9
    joint = load_space("joint")
    assert (joint.strategy.algorithm, joint.strategy.scheduler, joint.strategy.unique) == ("optuna-tpe", "race", True)
    assert all(load_space(n).strategy.name == "noise-aware" for n in ("paper_classifier_lr", "paper_dropout"))
    assert set(joint.parameters) >= {"train.classifier", "train.lr", "train.unet_width", "train.unet_depth",
                                     "train.unet_dropout", "train.dropout"}


def test_define_by_run_suggests_inside_every_domain():
    space = load_space("joint")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        space.define_by_run()(trial)
        p = trial.params
        assert 5e-5 <= p["train.lr"] <= 1e-3 and 2 <= p["train.unet_depth"] <= 7
        assert p["train.unet_width"] in (4, 8, 12, 16, 32, 64)
        space.train_config(p)
        study.tell(trial, 0.5)


def test_overrides_edit_top_level_fixed_and_asha_fields():
    space = load_space("joint", ["repeats=1", "train.epochs=4", "asha.grace_period=2", "num_samples=3"])
    strategy = space.strategy
    assert (strategy.repeats, space.epochs, strategy.grace_period, strategy.num_samples) == (1, 4, 2, 3)
    with pytest.raises(BadInputError, match="searches this parameter"):
        load_space("joint", ["train.lr=0.1"])


BASE = {"arch": 1, "metric": "val_f1", "algorithm": "grid", "parameters": {"train.lr": {"choice": [1e-3]}}}


@pytest.mark.parametrize("edit, field", [
    ({"metric": "val_auc"}, "metric"),
    ({"arch": 8}, "arch"),
    ({"algorithm": "bayes"}, "algorithm"),
    ({"colour": "red"}, "colour"),
    ({"parameters": {"train.lrr": {"choice": [1]}}}, "parameters.train.lrr"),
    ({"parameters": {"model.lr": {"choice": [1]}}}, "parameters.model.lr"),
    ({"parameters": {"train.lr": {"uniform": [1e-3, 1e-2]}}}, "parameters.train.lr"),  # grid needs finite
    ({"parameters": {"train.classifier": {"choice": ["vgg"]}}}, "parameters.train.classifier.choice"),
    ({"parameters": {"train.unet_depth": {"int": [5, 2]}}}, "parameters.train.unet_depth.int"),
    ({"fixed": {"train.epochs": 0}}, "fixed.train.epochs"),
    ({"repeats": 0}, "repeats"),
    ({"num_samples": 4}, "num_samples"),
    ({"scheduler": "asha", "asha": {"grace_period": 99}}, "asha.grace_period"),
])
def test_invalid_spaces_name_the_field(edit, field):
    with pytest.raises(BadInputError) as err:
        parse_space({**BASE, **edit}, "bad.yaml")
    assert "bad.yaml" in str(err.value) and f"'{field}'" in str(err.value)


def test_yaml_exponents_without_a_dot_are_numbers():
    space = parse_space({**BASE, "parameters": {"train.lr": {"choice": ["1e-3", "5e-4"]}}}, "x.yaml")
    assert [p["train.lr"] for p in space.grid()] == [1e-3, 5e-4]


def test_cli_exits_2_naming_file_and_field(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "parameters": {"train.dropout": {"choice": [1.5]}}}))
    out = subprocess.run([sys.executable, "-m", "vdes_tune", "plan", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "broken.yaml" in out.stderr and "parameters.train.dropout" in out.stderr
    (tmp_path / "notyaml.yaml").write_text("arch: [1\n")
    out = subprocess.run([sys.executable, "-m", "vdes_tune", "plan", str(tmp_path / "notyaml.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "notyaml.yaml" in out.stderr


def test_plan_names_the_configurations_that_do_not_fit():
    import json

    from vdes_tune.training.memory import GIB, estimate

    out = subprocess.run([sys.executable, "-m", "vdes_tune", "plan", "paper_unet_width_depth", "--gpu", "8",
                          "--gpu-memory-gb", "8", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["configurations"] == 36
    rows = {(r["point"]["train.unet_width"], r["point"]["train.unet_depth"]): r for r in plan["rows"]}
    space = load_space("paper_unet_width_depth")
    for point in space.grid():
        key = (point["train.unet_width"], point["train.unet_depth"])
        gb = estimate(space.train_config(point)).total / GIB
        assert rows[key]["feasible"] == (gb <= 0.9 * 8)
        if rows[key]["feasible"]:
            assert rows[key]["gpu_fraction"] * 0.9 * 8 >= gb > (rows[key]["gpu_fraction"] - 1 / 100) * 0.9 * 8
            assert rows[key]["per_gpu"] == int(1 / rows[key]["gpu_fraction"] + 1e-9)
    assert not rows[(64, 7)]["feasible"] and rows[(4, 2)]["feasible"]
    assert plan["feasible"] == sum(r["feasible"] for r in plan["rows"]) < 36


def test_one_parser_reads_every_set_edit_as_yaml():
    from vdes_tune.config import parse_set

    assert parse_set(["train.lr=1e-3", "archs=[1, 2]", "name= x ", "train.lr=2"]) == {
        "train.lr": 2, "archs": [1, 2], "name": "x"}  # YAML values; a key given twice keeps its last value
    for bad, said in (("epochs", "expected KEY=VALUE"), ("=3", "expected KEY=VALUE"), ("a=[1", "not valid YAML")):
        with pytest.raises(BadInputError, match=said):
            parse_set([bad])
    # The space's --set and the evaluation's --set go through it: the same edit means the same value.
    assert load_space("paper_classifier_lr", ["train.epochs=3"]).train_config(
        next(iter(load_space("paper_classifier_lr").points()))).epochs == 3
