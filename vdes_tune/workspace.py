"""Typed paths of every artifact, stage manifests, and atomic stage output; a workspace may live at a URI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vdes_tune import remote
from vdes_tune.errors import BadInputError

# 2: shards carry each crop's lesion mask; outputs of an older version are rebuilt, not trusted.
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DatasetPaths:
    """Files of the ingest stage's output folder."""

    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.parquet"

    @property
    def registration(self) -> Path:
        return self.root / "registration.parquet"

    @property
    def crops(self) -> Path:
        return self.root / "crops.parquet"

    @property
    def splits(self) -> Path:
        return self.root / "splits.json"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected.csv"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def qa(self) -> Path:
        return self.root / "qa"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def split_dir(self, split: str) -> Path:
        """Hive-style folder of one split's shards."""
        return self.shards / f"split={split}"


@dataclass(frozen=True)
class Workspace:
    """The root under which every stage writes its folder.

    `root` is a local folder: the workspace itself, or, when the workspace lives at a URI (`s3://`, `gs://`,
    `file://`), this node's mirror of it. Code reads and writes under `root`; `pull` and `push` move folders
    between the mirror and the URI (both do nothing for a local workspace, which on a cluster must be a
    shared path).
    """

    root: Path
    uri: str | None = None

    @classmethod
    def at(cls, root: str | Path) -> "Workspace":
        """Workspace at a local path or a URI (created on first write)."""
        if remote.is_uri(root):
            uri = str(root).rstrip("/")
            return cls(remote.mirror_root(uri), uri)
        return cls(Path(root).expanduser().resolve())

    @property
    def spec(self) -> str:
        """What a process on any node passes to `Workspace.at` to reach this workspace."""
        return self.uri or str(self.root)

    def location(self, path: Path) -> str:
        """A path under `root` as every node reaches it: the URI counterpart, or the (shared) path itself."""
        if not self.uri:
            return str(path)
        return remote.join(self.uri, path.relative_to(self.root).as_posix())

    def pull(self, path: Path) -> Path:
        """Bring a folder or file under `root` up to date with the shared workspace; returns `path`."""
        if self.uri:
            remote.pull(self.location(path), path)
        return path

    def push(self, path: Path) -> None:
        """Publish a finished folder (manifest last) or one file under `root` to the shared workspace."""
        if not self.uri:
            return
        if path.is_dir():
            remote.push(path, self.location(path))
        else:
            remote.push_file(path, self.location(path))

    def discard(self, path: Path) -> None:
        """Remove a file here and in the shared workspace."""
        path.unlink(missing_ok=True)
        if self.uri:
            remote.delete(self.location(path))

    @contextlib.contextmanager
    def staged(self, dest: Path) -> Iterator[str]:
        """A location every node's writers (Ray Data tasks, actors) can fill; its files are at local `dest`
        after the block. A local workspace is written in place; a URI one through a scratch folder there."""
        if not self.uri:
            dest.mkdir(parents=True, exist_ok=True)
            yield str(dest)
            return
        location = remote.join(self.uri, f".scratch-{uuid.uuid4().hex[:12]}")
        try:
            yield location
            remote.pull(location, dest)
        finally:
            remote.delete(location)

    @property
    def dataset(self) -> DatasetPaths:
        return DatasetPaths(self.root / "dataset")

    def generator(self, name: str) -> Path:
        """Folder of a trained generator: config.yaml, generator.pt, metrics.json, samples.png."""
        return self.root / "generators" / _safe_name(name)

    def vdes(self, name: str) -> Path:
        """Folder of a generator's virtual DES shards: split=<name>/part-*.parquet."""
        return self.root / "vdes" / _safe_name(name)

    def best(self, experiment: str) -> Path:
        """Best configuration per architecture exported from a search."""
        return self.root / "best" / f"{_safe_name(experiment)}.yaml"

    def evaluation(self, run: str) -> Path:
        """Folder of one final evaluation: plan.json, jobs/, results.parquet."""
        return self.root / "eval" / _safe_name(run)

    def report(self, run: str) -> Path:
        """Folder of the report of one evaluation."""
        return self.root / "report" / _safe_name(run)


def _safe_name(name: str) -> str:
    """A name usable as one folder: letters, digits, '-', '_' and '.', not starting with '.'."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name or ""):
        raise BadInputError(f"name {name!r}: use letters, digits, '-', '_' or '.', not starting with '.'")
    return name


def dataset_fingerprint(paths: DatasetPaths) -> dict[str, str]:
    """Config and input hashes of a finished ingest: what later stages record as their input."""
    found = read_manifest(paths.root)
    if not found or not found.get("complete"):
        raise BadInputError(f"{paths.root}: no finished ingest here (run `vdes-tune ingest` first)")
    return {"dataset_config_hash": found["config_hash"], "dataset_inputs_hash": found["inputs_hash"]}


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    """The stage's manifest, or None when it is absent or unreadable."""
    try:
        return json.loads((stage_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def manifest_matches(stage_dir: Path, config_hash: str, inputs_hash: str) -> bool:
    """True when a finished stage output was made from the same config and inputs."""
    found = read_manifest(stage_dir)
    return bool(found) and (
        found.get("schema_version") == SCHEMA_VERSION
        and found.get("config_hash") == config_hash
        and found.get("inputs_hash") == inputs_hash
        and found.get("complete") is True
    )


def write_json(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder that replaces `final` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def hash_files(paths: list[Path], root: Path, content: bool) -> str:
    """Digest of files by relative name plus either full content or size and mtime."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        if content:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            st = path.stat()
            digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
