"""The `vdes-tune` command line: help, synth, ingest, exit codes and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vdes_tune.cli import app

runner = CliRunner()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vdes_tune", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [[], ["synth"], ["ingest"], ["evaluate"], ["report"], ["plan-study"], ["run"],
                                     ["demo"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_synth_writes_the_layout_and_json_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "raw"), "--patients", "2", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    truth = pd.read_csv(tmp_path / "raw" / "synthetic_truth.csv")
    assert summary["pairs"] == truth["pair_id"].nunique() and summary["patients"] == 2
    assert len(list((tmp_path / "raw" / "Low energy images of CDD-CESM").glob("*.jpg"))) == summary["pairs"]


def test_synth_refuses_a_non_empty_folder_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "keep.txt").write_text("x")
    result = _cli("synth", str(tmp_path / "raw"), "--patients", "1")
    assert result.returncode == 2 and "raw" in result.stderr


def test_ingest_of_a_missing_folder_exits_2_naming_it(tmp_path: Path) -> None:
    result = _cli("ingest", "--data", str(tmp_path / "nowhere"), "--work", str(tmp_path / "w"))
    assert result.returncode == 2
    assert str(tmp_path / "nowhere") in result.stderr
    assert not (tmp_path / "w").exists()


def test_bad_option_value_exits_2(tmp_path: Path) -> None:
    result = _cli("ingest", "--data", str(tmp_path), "--registration", "sideways")
    assert result.returncode == 2 and "registration" in result.stderr


def test_usage_errors_exit_2_with_the_option_named() -> None:
    # Typer raises its own copy of click's exceptions: the console script must still treat them as usage errors.
    for args, said in ((["evaluate", "--repeats", "0"], "--repeats"), (["synth", "--no-such"], "No such option"),
                       (["plan-study", "--metric", "recall"], "'recall' is not one of f1")):
        result = _cli(*args)
        assert result.returncode == 2 and said in result.stderr and "failed:" not in result.stderr, result.stderr


def test_bad_config_field_exits_2(tmp_path: Path, small_dataset: Path) -> None:
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text("crop_size: 224\nnl_means_h: 12\n")
    result = _cli("ingest", "--data", str(small_dataset), "--work", str(tmp_path / "w"), "--config", str(cfg))
    assert result.returncode == 2 and "nl_means_h" in result.stderr


@pytest.mark.ray
def test_ingest_cli_json_then_noop(tmp_path: Path, small_dataset: Path) -> None:
    args = ["ingest", "--data", str(small_dataset), "--work", str(tmp_path / "w"), "--num-cpus", "2", "--json",
            "--crop-size", "128"]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)
    assert summary["crops"] == len(pd.read_parquet(tmp_path / "w" / "dataset" / "crops.parquet"))
    assert not summary["skipped"] and summary["table1"][-1]["total"] == summary["crops"]
    second = _cli(*args)
    assert second.returncode == 0 and json.loads(second.stdout)["skipped"] is True


def test_models_list_and_describe_json() -> None:
    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0
    names = [r["name"] for r in json.loads(listed.output)]
    assert names == ["unet", "cyclegan", "pix2pix", "resnet18", "resnet34", "regnety_016"]
    described = runner.invoke(app, ["models", "describe", "unet", "--width", "4", "--depth", "3",
                                    "--input-size", "32", "--json"])
    assert described.exit_code == 0, described.output
    info = json.loads(described.output)
    assert info["config"]["width"] == 4 and info["output_shape"] == [1, 1, 32, 32]
    assert info["parameters"]["total"] > 0


def test_models_describe_unknown_name_exits_2() -> None:
    result = _cli("models", "describe", "vgg16")
    assert result.returncode == 2 and "available: unet" in result.stderr


def test_a_command_that_exits_non_zero_keeps_its_code_through_main(tmp_path: Path) -> None:
    # `status` of an empty workspace raises typer.Exit(1); main() runs click without standalone mode.
    result = _cli("status", "--work", str(tmp_path / "empty"))
    assert result.returncode == 1 and "missing" in result.stdout


def _commands(command, path=()):
    """Every command of the CLI with its path (`generators export` is ("generators", "export"))."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_help_shows_its_text_as_written() -> None:
    """Each command's summary and each option's help, as the source writes them (whitespace aside), appear
    on one line of its --help: nothing in brackets swallowed as markup, no stray line breaks."""
    import inspect

    import typer.main

    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output
        lines = [" ".join(line.replace("│", " ").split()) for line in shown.splitlines()]
        written = [inspect.getdoc(command.callback)] if command.callback and command.callback.__doc__ else []
        signature = inspect.signature(command.callback) if command.callback else None
        for param in (signature.parameters.values() if signature else []):
            help_text = getattr(param.default, "help", None)
            written += [help_text] if help_text else []
        for text in written:
            want = " ".join(text.split())
            assert any(want in line for line in lines), f"vdes-tune {' '.join(path)} --help lost: {want!r}"
            checked += 1
    assert checked > 100  # every command's summary and options, not a handful
    # And each command's summary on one line of its group's command list (`status`'s broke after "repairs").
    for path, command in _commands(root):
        if path and command.callback and command.callback.__doc__:
            listed = runner.invoke(app, [*path[:-1], "--help"], env={"COLUMNS": "400"}).output
            lines = [" ".join(line.replace("│", " ").split()) for line in listed.splitlines()]
            want = " ".join(inspect.getdoc(command.callback).split())
            assert any(want in line for line in lines), f"vdes-tune {' '.join(path[:-1])} --help broke: {want!r}"


def test_top_level_help_lists_commands_in_the_order_a_user_meets_them() -> None:
    from vdes_tune.cli.app import PANELS

    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    at = {name: shown.index(f"│ {name} ") for names in PANELS.values() for name in names}
    order = [name for names in PANELS.values() for name in names]
    assert sorted(order, key=at.get) == order
    assert order[:6] == ["demo", "run", "status", "synth", "ingest", "generators"] and "search" in order[:9]
    titles = [shown.index(f"─ {title} ") for title in PANELS]
    assert titles == sorted(titles) and all(shown.index(f"─ {t} ") < at[names[0]]
                                            for t, names in PANELS.items())
