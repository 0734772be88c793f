"""Stage outputs are indexed in their manifest (size, sha256), verified before a stage skips itself, reported by
`vdes-tune status`; corrupt shards give a clear error; killed runs' temporary folders are swept safely."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vdes_tune.errors import BadInputError
from vdes_tune.workspace import (SCHEMA_VERSION, atomic_dir, dataset_fingerprint, find_debris, judge_debris,
                                 manifest_matches, output_index, read_manifest, sweep_debris, verify_outputs,
                                 write_json, DatasetPaths, _owner_tag)


@pytest.fixture
def work(search_work: Path, tmp_path: Path) -> Path:
    """A private copy of the shared ingested dataset (never corrupt the session fixture in place)."""
    shutil.copytree(search_work / "dataset", tmp_path / "w" / "dataset")
    return tmp_path / "w"


def _shard(work: Path) -> Path:
    return sorted((work / "dataset" / "shards").rglob("*.parquet"))[0]


def _hashes(work: Path) -> tuple[str, str]:
    found = read_manifest(work / "dataset")
    return found["config_hash"], found["inputs_hash"]


def test_manifest_indexes_every_output_with_its_size_and_sha256(work: Path) -> None:
    root = work / "dataset"
    index = read_manifest(root)["outputs"]
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(index) == set(files) and any(k.startswith("shards/split=") for k in index)
    for rel, path in files.items():
        assert index[rel] == {"size": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert verify_outputs(root, full=True) == [] and manifest_matches(root, *_hashes(work), verify=True)


def test_a_truncated_shard_is_named_and_ingest_no_longer_skips(work: Path, small_dataset: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    from vdes_tune.config import IngestConfig
    from vdes_tune.stages import ingest
    from vdes_tune.workspace import Workspace

    cfg = IngestConfig(crop_size=64)  # search_work's config
    assert ingest.run(cfg, Workspace.at(work), small_dataset).skipped  # intact: up to date

    shard = _shard(work)
    size = shard.stat().st_size
    with open(shard, "r+b") as handle:
        handle.truncate(size // 2)
    problems = verify_outputs(work / "dataset")
    assert [p.path for p in problems] == [shard] and str(size // 2) in problems[0].reason
    assert not manifest_matches(work / "dataset", *_hashes(work))
    assert f"{problems[0]}: rebuilding {work / 'dataset'}" in capsys.readouterr().err  # the rebuild says why

    class Rebuilding(Exception):
        pass

    def rebuild(*args, **kwargs):
        raise Rebuilding  # stands in for the real (slow) rebuild: reaching it is what the test asserts

    monkeypatch.setattr(ingest, "build_catalog", rebuild)
    with pytest.raises(Rebuilding):
        ingest.run(cfg, Workspace.at(work), small_dataset)


def test_a_flipped_byte_of_the_same_size_is_found_only_by_verify(work: Path) -> None:
    shard = _shard(work)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert verify_outputs(work / "dataset", full=False) == []
    assert manifest_matches(work / "dataset", *_hashes(work), verify=False)
    assert [p.path for p in verify_outputs(work / "dataset", full=True)] == [shard]
    assert not manifest_matches(work / "dataset", *_hashes(work), verify=True)


def _fake_generator(work: Path, name: str, dataset: dict[str, str]) -> Path:
    """A generators/<name> folder whose manifest records `dataset` as its input (no training needed)."""
    folder = work / "generators" / name
    folder.mkdir(parents=True)
    (folder / "generator.pt").write_bytes(b"weights")
    write_json(folder / "manifest.json", {"schema_version": SCHEMA_VERSION, "stage": "generators.train",
                                          "config": {"model": "unet"}, "inputs": dataset, "complete": True,
                                          "outputs": output_index(folder)})
    return folder


def test_status_json_reports_done_stale_corrupt_missing_with_repairs(work: Path, small_dataset: Path) -> None:
    from vdes_tune.cli import app

    runner = CliRunner()
    current = dataset_fingerprint(DatasetPaths(work / "dataset"))
    _fake_generator(work, "fresh", current)
    _fake_generator(work, "old", {**current, "dataset_inputs_hash": "0" * 16})
    result = runner.invoke(app, ["status", "--work", str(work), "--json"])
    states = {Path(s["path"]).name: s for s in json.loads(result.stdout)["stages"]}
    assert states["dataset"]["state"] == "done" and states["fresh"]["state"] == "done"
    assert states["old"]["state"] == "stale" and "--name old" in states["old"]["repair"]
    assert result.exit_code == 1

    shutil.rmtree(work / "generators" / "old")
    assert runner.invoke(app, ["status", "--work", str(work)]).exit_code == 0

    shard = _shard(work)
    shard.write_bytes(shard.read_bytes()[:100])
    result = runner.invoke(app, ["status", "--work", str(work), "--json"])
    dataset = json.loads(result.stdout)["stages"][0]
    assert result.exit_code == 1 and dataset["state"] == "corrupt" and str(shard) in dataset["detail"]
    assert dataset["repair"].startswith(f"vdes-tune ingest --data {small_dataset} --work {work}")
    assert dataset["repair"].endswith("--force")

    shutil.rmtree(work / "dataset")
    result = runner.invoke(app, ["status", "--work", str(work), "--json"])
    dataset = json.loads(result.stdout)["stages"][0]
    assert result.exit_code == 1 and dataset["state"] == "missing" and "vdes-tune ingest" in dataset["repair"]


def test_an_old_manifest_without_an_index_is_trusted(work: Path) -> None:
    found = read_manifest(work / "dataset")
    del found["outputs"]
    write_json(work / "dataset" / "manifest.json", found)
    _shard(work).write_bytes(b"not parquet")
    assert verify_outputs(work / "dataset", full=True) == []
    assert manifest_matches(work / "dataset", *_hashes(work), verify=True)


def test_a_later_stage_reading_a_corrupt_shard_gets_the_file_and_the_repair(work: Path) -> None:
    from vdes_tune.config import GeneratorConfig
    from vdes_tune.stages import generators
    from vdes_tune.training.data import load_split
    from vdes_tune.workspace import Workspace

    shard = _shard(work)
    shard.write_bytes(shard.read_bytes()[:200])
    split = shard.parent.name.removeprefix("split=")
    with pytest.raises(BadInputError) as err:
        load_split(work / "dataset" / "shards", split)
    assert str(shard) in str(err.value) and "vdes-tune ingest --data" in str(err.value)
    assert "--force" in str(err.value)
    with pytest.raises(BadInputError) as err:  # refused before training starts, by the cheap check
        generators.train(GeneratorConfig.for_model("unet", epochs=1), Workspace.at(work), "g")
    assert str(shard) in str(err.value) and "vdes-tune ingest" in str(err.value)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_debris_of_a_dead_owner_is_swept_and_of_a_live_one_kept(work: Path) -> None:
    from vdes_tune.cli import app

    host, _, _ = _owner_tag().split("-")
    final = work / "dataset"
    dead = work / f".dataset.tmp-{host}-{_dead_pid()}-0-0123abcd"
    live = work / f".dataset.tmp-{_owner_tag()}-4567cdef"
    unknown = work / ".dataset.tmp-89abcdef"  # an older version's name: no owner, and fresh
    stale_foreign = work / ".dataset.old-ffffffff-1-1-0000aaaa"
    for folder in (dead, live, unknown, stale_foreign):
        (folder / "shards").mkdir(parents=True)
        (folder / "shards" / "part-0.parquet").write_bytes(b"half")
    for path in (stale_foreign, stale_foreign / "shards", stale_foreign / "shards" / "part-0.parquet"):
        os.utime(path, (0, 0))  # untouched since 1970: well past the foreign-host age

    listed = json.loads(CliRunner().invoke(app, ["status", "--work", str(work), "--json"]).stdout)["debris"]
    assert {Path(d["path"]).name: d["safe_to_sweep"] for d in listed} == {
        dead.name: True, live.name: False, unknown.name: False, stale_foreign.name: True}

    assert sorted(sweep_debris(final)) == sorted([dead, stale_foreign])
    assert live.is_dir() and unknown.is_dir() and not dead.exists() and not stale_foreign.exists()
    assert [d.path for d in find_debris(final)] == sorted([live, unknown])


def test_file_temporaries_of_a_killed_evaluation_are_listed_and_swept(work: Path, monkeypatch) -> None:
    from vdes_tune.cli import app
    from vdes_tune.workspace import eval_folders, sweep_debris_in, temp_path

    jobs = work / "eval" / "killed" / "jobs"
    jobs.mkdir(parents=True)
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append((Path(a).name, Path(b).name)), real_replace(a, b)))
    write_json(jobs / "a1-r001.json", {"job": "a1-r001"})
    monkeypatch.undo()
    assert judge_debris(jobs / renamed[0][0]).why.endswith(f"pid {os.getpid()} on this host, is alive")
    dead = jobs / f".a1-r000.json.tmp-{_owner_tag().split('-')[0]}-{_dead_pid()}-0-0123abcd"
    dead.write_text('{"job": "a1-r0')  # cut off mid-write
    live = temp_path(work / "eval" / "killed" / "weights" / "a1-r002.pt")
    live.parent.mkdir()
    live.write_bytes(b"half")

    listed = json.loads(CliRunner().invoke(app, ["status", "--work", str(work), "--json"]).stdout)["debris"]
    assert {Path(d["path"]).name: d["safe_to_sweep"] for d in listed} == {dead.name: True, live.name: False}
    assert [p for f in eval_folders(work / "eval" / "killed") for p in sweep_debris_in(f)] == [dead]
    assert live.is_file() and (jobs / "a1-r001.json").is_file()


def test_atomic_dir_names_its_owner_and_sweeps_before_writing(tmp_path: Path) -> None:
    final = tmp_path / "out"
    dead = tmp_path / f".out.tmp-{_owner_tag().split('-')[0]}-{_dead_pid()}-0-0123abcd"
    dead.mkdir()
    with atomic_dir(final) as tmp:
        assert not dead.exists()
        judged = judge_debris(tmp)
        assert not judged.safe and str(os.getpid()) in judged.why
        (tmp / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a" and find_debris(final) == []


def test_evaluate_reruns_a_job_whose_record_is_corrupt(tmp_path: Path) -> None:
    from vdes_tune.evaluation.repeats import _drop_corrupt_jobs

    out = tmp_path / "eval" / "main"
    (out / "jobs").mkdir(parents=True)
    for job in ("a1-r000", "a1-r001"):
        (out / "jobs" / f"{job}.json").write_text(json.dumps({"job": job}))
    write_json(out / "manifest.json", {"complete": True, "outputs": output_index(out)})
    (out / "jobs" / "a1-r001.json").write_text(json.dumps({"job": "a1-r00X"}))  # same size, other bytes
    _drop_corrupt_jobs(out, full=False, log=lambda m: None)
    assert (out / "jobs" / "a1-r001.json").is_file()
    logged: list[str] = []
    _drop_corrupt_jobs(out, full=True, log=logged.append)
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["a1-r000.json"] and "a1-r001" in logged[0]
