"""Typed paths of every artifact, stage manifests, and atomic stage output; a workspace may live at a URI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vdes_tune import remote
from vdes_tune.errors import BadInputError

# 2: shards carry each crop's lesion mask; outputs of an older version are rebuilt, not trusted.
# The manifest's `outputs` index (added later) is optional, so it needs no new version: a manifest
# without it is trusted as before, only unverifiable (docs/workspace.md).
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
OUTPUTS = "outputs"
# Another host's temporary folder is swept only when nothing in it changed for this long: its owner
# cannot be asked whether it is alive, and no stage goes a day without writing a file.
FOREIGN_DEBRIS_AGE_S = 24 * 3600


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


def manifest_matches(stage_dir: Path, config_hash: str, inputs_hash: str, verify: bool = False) -> bool:
    """True when a finished stage output was made from the same config and inputs and its files verify:
    sizes always, content hashes too with `verify`."""
    found = read_manifest(stage_dir)
    if not (found and found.get("schema_version") == SCHEMA_VERSION and found.get("config_hash") == config_hash
            and found.get("inputs_hash") == inputs_hash and found.get("complete") is True):
        return False
    problems = verify_outputs(stage_dir, full=verify)
    if problems:
        # Up to date by its manifest, yet rebuilt: say why, or the rebuild looks like a bug.
        print(f"{describe(problems)}: rebuilding {stage_dir}", file=sys.stderr, flush=True)
        return False
    return True


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (shards can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _indexed(path: Path, folder: Path) -> bool:
    """Whether a file is a stage output: not the manifest, nor hidden temporaries, nor eval's running/."""
    rel = path.relative_to(folder)
    return (rel.as_posix() != MANIFEST and not any(part.startswith(".") for part in rel.parts)
            and rel.parts[0] != "running")


def output_index(folder: Path) -> dict[str, dict[str, Any]]:
    """Every output file under `folder`: relative path -> size and sha256 (what the manifest records)."""
    return {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(folder.rglob("*")) if p.is_file() and _indexed(p, folder)}


@dataclass(frozen=True)
class Problem:
    """One output file that does not match the manifest's index."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def describe(problems: list[Problem]) -> str:
    """The first problem, and how many more there are."""
    return f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def has_output_index(stage_dir: Path) -> bool:
    """Whether the stage's manifest records its outputs (manifests written before the index do not)."""
    return isinstance((read_manifest(stage_dir) or {}).get(OUTPUTS), dict)


def verify_outputs(stage_dir: Path, full: bool = False) -> list[Problem]:
    """Files of the manifest's outputs index that are missing, of another size, or (with `full`) of another
    content; empty when all verify or when the manifest has no index (trusted, see docs/workspace.md)."""
    index = (read_manifest(stage_dir) or {}).get(OUTPUTS)
    if not isinstance(index, dict):
        return []
    problems = []
    for rel, want in sorted(index.items()):
        path = stage_dir / rel
        try:
            size = path.stat().st_size
        except OSError:
            problems.append(Problem(path, "missing"))
            continue
        if size != want["size"]:
            problems.append(Problem(path, f"{size} bytes, the manifest says {want['size']} (truncated or rewritten)"))
        elif full and _sha256(path) != want["sha256"]:
            problems.append(Problem(path, "content differs from the manifest's sha256 (corrupt)"))
    return problems


def workspace_of(path: Path) -> Path | None:
    """The workspace root above a file of a stage folder (dataset/, generators/<n>/, vdes/<n>/, ...)."""
    path = Path(path)
    for parent in path.parents:
        if parent.name == "dataset" and (parent / MANIFEST).is_file():
            return parent.parent
        if parent.parent.name in ("generators", "vdes", "eval", "report") and (parent / MANIFEST).is_file():
            return parent.parent.parent
    return None


def repair_command(path: Path, root: Path | None = None) -> str:
    """The command that rebuilds the stage output holding `path` (under workspace `root`, found when None)."""
    path = Path(path)
    root = root or workspace_of(path)
    if root is None:
        return "re-run the stage that wrote it with --force"
    rel = path.relative_to(root).parts
    if rel[0] == "dataset":
        found = read_manifest(root / "dataset") or {}
        config = root / "dataset" / "config.yaml"
        return (f"vdes-tune ingest --data {found.get('data', 'RAW')} --work {root}"
                + (f" --config {config}" if config.is_file() else "") + " --force")
    name = rel[1]
    if rel[0] == "generators":
        model = ((read_manifest(root / "generators" / name) or {}).get("config") or {}).get("model", "MODEL")
        return (f"vdes-tune generators train {model} --work {root} --name {name} "
                f"--config {root / 'generators' / name / 'config.yaml'} --force")
    if rel[0] == "vdes":
        return f"vdes-tune generators synthesize {name} --work {root} --force"
    if rel[0] == "eval":
        return (f"vdes-tune evaluate --work {root} --run {name} --verify (with the run's settings), "
                f"or `vdes-tune run PIPELINE --data RAW --work {root} --verify`")
    return f"vdes-tune report --work {root} --run {name}"


def read_parquet_checked(path: Path, **kwargs: Any) -> Any:
    """`pandas.read_parquet` of a stage output; a corrupt or truncated file is a BadInputError naming it and
    the command that rebuilds it, not a raw ArrowInvalid."""
    import pandas as pd
    import pyarrow

    try:
        return pd.read_parquet(path, **kwargs)
    except (pyarrow.ArrowException, OSError) as exc:
        raise BadInputError(f"{path}: unreadable Parquet file, corrupt or truncated ({type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); rebuild it: "
                            f"{repair_command(path)}") from exc


def check_outputs(stage_dir: Path) -> None:
    """Raise a BadInputError naming the first bad file and its repair when a stage's outputs fail the cheap
    check: a later stage refuses a truncated input instead of failing deep inside a read."""
    problems = verify_outputs(stage_dir)
    if problems:
        raise BadInputError(f"{describe(problems)}; rebuild it: {repair_command(problems[0].path)}")


def temp_path(final: Path) -> Path:
    """A hidden sibling of `final` to write before renaming; its name says who writes it (host, pid, start)
    so a later run can sweep it when that writer is dead."""
    return final.with_name(f".{final.name}.tmp-{_owner_tag()}-{uuid.uuid4().hex[:8]}")


def write_json(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    tmp = temp_path(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _host_tag() -> str:
    """A short, name-safe tag of this host."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _start_ticks(pid: int) -> int:
    """A process's start time in clock ticks since boot (Linux /proc); 0 where unknown."""
    try:
        # Field 22 of /proc/<pid>/stat; split after the ')' closing the command name, which may hold spaces.
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _owner_tag() -> str:
    """host-pid-start of this process, put in temporary folder names so a later run can tell whether the
    writer still lives (a pid alone may have been reused)."""
    return f"{_host_tag()}-{os.getpid()}-{_start_ticks(os.getpid())}"


DEBRIS = re.compile(r"^\.(?P<stage>.+)\.(?P<kind>tmp|old)-(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-)?"
                    r"[0-9a-f]{8}$")


@dataclass(frozen=True)
class Debris:
    """A temporary folder (atomic_dir) or file (temp_path) left behind, and whether sweeping it is safe."""

    path: Path
    safe: bool
    why: str


def _pid_alive(pid: int, start: int) -> bool:
    """Whether the process `pid` started at `start` (0: unknown) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    now = _start_ticks(pid)
    return not (start and now and now != start)  # another start time: the pid was reused


def _newest_mtime(folder: Path) -> float:
    """Latest modification time of a folder or anything in it."""
    newest = folder.stat().st_mtime
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(base, name)).st_mtime)
    return newest


def judge_debris(path: Path, now: float | None = None) -> Debris:
    """Whether a leftover temporary folder or file may be removed: its owner is dead on this host, or (another
    host's, or a name without an owner) nothing in it changed for FOREIGN_DEBRIS_AGE_S."""
    m = DEBRIS.match(path.name)
    if m and m["host"] == _host_tag():
        pid, start = int(m["pid"]), int(m["start"])
        if _pid_alive(pid, start):
            return Debris(path, False, f"its owner, pid {pid} on this host, is alive")
        return Debris(path, True, f"its owner, pid {pid} on this host, is gone")
    age = (now if now is not None else time.time()) - _newest_mtime(path)
    owner = f"owned by host {m['host']}" if m and m["host"] else "owner unknown"
    if age >= FOREIGN_DEBRIS_AGE_S:
        return Debris(path, True, f"{owner}, untouched for {age / 3600:.0f} h")
    return Debris(path, False, f"{owner}, changed {age / 60:.0f} min ago (swept after "
                               f"{FOREIGN_DEBRIS_AGE_S // 3600} h)")


def find_debris_in(folder: Path) -> list[Debris]:
    """Every temporary folder of atomic_dir, or file of temp_path, directly in `folder`, judged."""
    if not folder.is_dir():
        return []
    return [judge_debris(p) for p in sorted(folder.glob(".*")) if DEBRIS.match(p.name)]


def find_debris(final: Path) -> list[Debris]:
    """atomic_dir's temporary folders of `final` (siblings `.<name>.tmp-*` / `.<name>.old-*`), judged."""
    return [d for d in find_debris_in(final.parent) if DEBRIS.match(d.path.name)["stage"] == final.name]


def sweep_debris(final: Path) -> list[Path]:
    """Remove the temporary folders of `final` that a killed run left and no live process owns."""
    return _sweep(find_debris(final))


def eval_folders(out: Path) -> list[Path]:
    """The folders of an evaluation run (eval/<run>) that its jobs write file by file."""
    return [out, *(out / sub for sub in ("jobs", "weights", "predictions"))]


def sweep_debris_in(folder: Path) -> list[Path]:
    """Remove every temporary folder or file directly in `folder` that a killed run left and no live
    process owns (for folders a stage writes file by file, like eval/<run>/jobs)."""
    return _sweep(find_debris_in(folder))


def _sweep(found: list[Debris]) -> list[Path]:
    swept = []
    for debris in found:
        if debris.safe:
            if debris.path.is_dir():
                shutil.rmtree(debris.path, ignore_errors=True)
            else:
                debris.path.unlink(missing_ok=True)
            swept.append(debris.path)
    return swept


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder that replaces `final` only if the block succeeds; first sweep
    what killed runs left (their folders name their owner: host, pid, start time)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_debris(final)
    tmp = temp_path(final)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{_owner_tag()}-{uuid.uuid4().hex[:8]}")
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
