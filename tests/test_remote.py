"""Workspaces at a URI: mirror pull/push against a real S3 API (moto on 127.0.0.1) and a file:// URI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from vdes_tune import remote
from vdes_tune.workspace import SCHEMA_VERSION, Workspace, manifest_matches


def _stage(folder: Path, files: dict[str, bytes], manifest: dict) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(params=["s3", "file"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A workspace URI on the S3 test server or on a file:// folder."""
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket") + "/ws"
    return (tmp_path / "shared").as_uri()


def test_a_stage_pushed_from_one_mirror_is_pulled_whole_by_another(uri: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "node-a"))
    a = Workspace.at(uri)
    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "node-b"))
    b = Workspace.at(uri)
    assert a.root != b.root and a.uri == b.uri == uri.rstrip("/")
    stage = a.dataset.root
    files = {"catalog.parquet": os.urandom(3000), "shards/split=train/part-00000.parquet": os.urandom(70000),
             "qa/table1.md": b"| a |\n"}
    _stage(stage, files, {"complete": True, "config_hash": "c1", "inputs_hash": "i1", "schema_version": SCHEMA_VERSION})
    a.push(stage)

    b.pull(b.dataset.root)
    assert _tree(b.dataset.root) == _tree(stage)
    assert manifest_matches(b.dataset.root, "c1", "i1")

    # A rebuild with the same file names and sizes but new content, one file gone: the new manifest makes
    # the other mirror fetch everything again and drop the gone file.
    (stage / "qa" / "table1.md").unlink()
    _stage(stage, {"catalog.parquet": os.urandom(3000)}, {"complete": True, "config_hash": "c2",
                                                          "inputs_hash": "i1", "schema_version": SCHEMA_VERSION})
    a.push(stage)
    b.pull(b.dataset.root)
    assert _tree(b.dataset.root) == _tree(stage)
    assert not (b.dataset.root / "qa" / "table1.md").exists()
    assert manifest_matches(b.dataset.root, "c2", "i1")


def test_push_publishes_the_manifest_last_and_removes_the_old_one_first(uri: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "cache"))
    ws = Workspace.at(uri)
    stage = ws.generator("unet")
    _stage(stage, {"generator.pt": b"w" * 100, "metrics.json": b"{}"}, {"complete": True})
    ws.push(stage)
    fs, base = remote.filesystem(ws.location(stage))
    seen: list[tuple[str, bool]] = []
    upload = remote.upload

    def spy(fs_, local, target, atomic=True):
        # What a reader would find at the moment each file starts uploading.
        seen.append((target.rsplit("/", 1)[1], fs.get_file_info(f"{base}/manifest.json").type == pafs.FileType.File))
        upload(fs_, local, target, atomic)

    monkeypatch.setattr(remote, "upload", spy)
    (stage / "generator.pt").write_bytes(b"v" * 101)
    ws.push(stage)
    # Only the changed file is sent again, then the manifest; the previous manifest was gone before any
    # file changed.
    assert seen == [("generator.pt", False), ("manifest.json", False)]


def test_single_files_round_trip_and_discard(uri: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "a"))
    a = Workspace.at(uri)
    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "b"))
    b = Workspace.at(uri)
    job = a.evaluation("main") / "jobs" / "a1-r000.json"
    job.parent.mkdir(parents=True)
    job.write_text('{"attempt": 1}')
    a.push(job)
    assert json.loads(b.pull(b.evaluation("main") / "jobs" / "a1-r000.json").read_text()) == {"attempt": 1}
    job.write_text('{"attempt": 2}')  # same size: a single file is fetched regardless
    a.push(job)
    assert json.loads(b.pull(b.evaluation("main") / "jobs" / "a1-r000.json").read_text()) == {"attempt": 2}
    # A folder without a manifest (jobs/) is pulled file by file.
    (job.parent / "a2-r000.json").write_text("{}")
    a.push(job.parent / "a2-r000.json")
    b.pull(b.evaluation("main") / "jobs")
    assert sorted(p.name for p in (b.evaluation("main") / "jobs").iterdir()) == ["a1-r000.json", "a2-r000.json"]
    a.discard(job)
    b.pull(b.evaluation("main") / "jobs")
    assert sorted(p.name for p in (b.evaluation("main") / "jobs").iterdir()) == ["a2-r000.json"]
    assert not job.exists()


def test_staged_output_lands_locally_and_leaves_no_scratch(uri: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "cache"))
    ws = Workspace.at(uri)
    dest = tmp_path / "dest"
    with ws.staged(dest) as target:
        assert remote.is_uri(target)
        fs, inner = remote.filesystem(remote.join(target, "split=train", "part-00000.parquet"))
        fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(inner) as f:
            f.write(b"rows")
    assert (dest / "split=train" / "part-00000.parquet").read_bytes() == b"rows"
    assert not [n for n in remote.list_files(uri) if ".scratch-" in n]


def test_a_local_workspace_is_untouched_by_pull_and_push(tmp_path: Path):
    ws = Workspace.at(tmp_path / "w")
    assert ws.uri is None and ws.spec == str(tmp_path / "w") and ws.location(ws.dataset.root) == str(ws.dataset.root)
    stage = ws.dataset.root
    _stage(stage, {"a.bin": b"x"}, {"complete": True})
    ws.push(stage)
    ws.pull(stage)
    assert _tree(stage) == {"a.bin": b"x", "manifest.json": b'{"complete": true}'}


def test_uri_paths_are_literal_spaces_and_percent_signs_included(s3_bucket: str, tmp_path: Path):
    src = tmp_path / "Low energy images of CDD-CESM" / "P1 100%.jpg"
    src.parent.mkdir()
    src.write_bytes(b"jpeg")
    location = f"{s3_bucket}/raw/Low energy images of CDD-CESM/P1 100%.jpg"
    remote.push_file(src, location)
    assert remote.read_bytes(location) == b"jpeg"
    assert remote.list_files(f"{s3_bucket}/raw") == ["Low energy images of CDD-CESM/P1 100%.jpg"]


def test_ingest_from_an_empty_prefix_names_the_uri(s3_bucket: str, tmp_path: Path, monkeypatch):
    from vdes_tune.config import IngestConfig
    from vdes_tune.errors import BadInputError
    from vdes_tune.stages import ingest

    monkeypatch.setenv("VDES_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BadInputError, match=f"{s3_bucket}/nothing: no raw dataset there"):
        ingest.run(IngestConfig(), Workspace.at(tmp_path / "w"), f"{s3_bucket}/nothing")
