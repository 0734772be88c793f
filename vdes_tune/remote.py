"""Folders in shared storage named by a URI (`s3://`, `gs://`, `file://`), mirrored to a local folder.

A workspace on a URI is worked on through a node-local mirror: a process pulls the folders it reads and
pushes the folders it writes. A stage folder is published with its manifest last and its old manifest
removed first, so a reader that trusts only a manifest never trusts a half-published stage (object stores
have no atomic rename).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

MANIFEST = "manifest.json"


def is_uri(path: str | Path) -> bool:
    """`s3://...`, `gs://...`, `file://...` and friends (not a local path)."""
    return "://" in str(path)


def filesystem(location: str | Path) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a local path or URI."""
    import pyarrow.fs as pafs

    if is_uri(location):
        # Paths are taken literally (CDD-CESM folders have spaces): encode them for the URI parser, which
        # decodes them again; a query (`?endpoint_override=...`) is passed on as written.
        path, sep, query = str(location).partition("?")
        return pafs.FileSystem.from_uri(quote(path, safe=":/@+,;~=&") + sep + query)
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """`location/part/...` for a URI or a local path."""
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts if p)])


def read_bytes(location: str | Path) -> bytes:
    """A whole file from a local path or URI."""
    fs, inner = filesystem(location)
    with fs.open_input_stream(inner) as f:
        return f.read()


def write_bytes(location: str | Path, data: bytes) -> None:
    """Write a small file at a local path or URI via a temporary name, so readers see all of it or none."""
    fs, inner = filesystem(location)
    parent, name = inner.rsplit("/", 1)
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, inner)


def mirror_root(uri: str) -> Path:
    """This node's local mirror of `uri`: under $VDES_CACHE (default ~/.cache/vdes-tune), one folder per URI."""
    base = Path(os.environ.get("VDES_CACHE") or Path.home() / ".cache" / "vdes-tune").expanduser()
    return (base / "mirrors" / hashlib.sha256(uri.encode()).hexdigest()[:16]).resolve()


def _remote_files(fs: Any, base: str) -> dict[str, Any]:
    """Relative name -> FileInfo of every file under `base` (empty when absent)."""
    import pyarrow.fs as pafs

    info = fs.get_file_info(base)
    if info.type == pafs.FileType.File:
        return {"": info}
    if info.type != pafs.FileType.Directory:
        return {}
    found = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {f.path[len(base):].lstrip("/"): f for f in found if f.type == pafs.FileType.File}


def list_files(location: str) -> list[str]:
    """Relative names of the files under a local folder or URI."""
    fs, base = filesystem(location)
    return sorted(_remote_files(fs, base))


def _local_files(folder: Path) -> dict[str, Path]:
    if folder.is_file():
        return {"": folder}
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") and ".tmp" in part for part in p.relative_to(folder).parts)}


def _same(info: Any, path: Path) -> bool:
    """The local copy was downloaded from this remote file (size and modification time agree)."""
    try:
        st = path.stat()
    except OSError:
        return False
    mtime = info.mtime.timestamp() if info.mtime is not None else None
    return st.st_size == info.size and (mtime is None or abs(st.st_mtime - mtime) < 1e-3)


def download(fs: Any, remote: str, local: Path) -> None:
    """Copy one remote file to `local` (via a temporary name) and stamp it with the remote mtime."""
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with fs.open_input_stream(remote) as src, open(tmp, "wb") as dst:
            while chunk := src.read(8 << 20):
                dst.write(chunk)
        info = fs.get_file_info(remote)
        if info.mtime is not None:
            os.utime(tmp, (info.mtime.timestamp(), info.mtime.timestamp()))
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)


def upload(fs: Any, local: Path, remote: str, atomic: bool = True) -> None:
    """Copy one local file to `remote`; `atomic` writes a temporary object and moves it into place."""
    parent = remote.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    target = f"{parent}/.{remote.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp" if atomic else remote
    with open(local, "rb") as src, fs.open_output_stream(target) as dst:
        while chunk := src.read(8 << 20):
            dst.write(chunk)
    if atomic:
        fs.move(target, remote)


def pull(uri: str, local: Path) -> None:
    """Make the local folder (or file) a copy of the remote one: fetch what differs, drop what is gone.

    A single file is always fetched (they are small: manifests, job records). A folder with a manifest is
    a published stage: unchanged while its manifest is, else fetched whole, manifest last. Other folders
    are compared file by file (size and modification time).
    """
    fs, base = filesystem(uri)
    remote = _remote_files(fs, base)
    if "" in remote:
        if local.is_dir():
            shutil.rmtree(local)
        download(fs, base, local)
        return
    if local.is_file():
        local.unlink()
    have = _local_files(local)
    names = [n for n in remote if not (n.rsplit("/", 1)[-1].startswith(".") and n.endswith(".tmp"))]
    refresh_manifest = False
    if MANIFEST in remote:
        manifest = read_bytes(f"{uri.rstrip('/')}/{MANIFEST}")
        current = MANIFEST in have and have[MANIFEST].read_bytes() == manifest
        if current and all(n in have and have[n].stat().st_size == remote[n].size for n in names):
            stale = []
        else:
            stale, refresh_manifest = [n for n in names if n != MANIFEST], True
            (local / MANIFEST).unlink(missing_ok=True)  # untrusted until every file is in
    else:
        stale = [n for n in names if not (n in have and _same(remote[n], have[n]))]
    for name in stale:
        download(fs, f"{base}/{name}", local / name)
    if refresh_manifest:
        download(fs, f"{base}/{MANIFEST}", local / MANIFEST)
    for name, path in have.items():
        if name not in remote:
            path.unlink(missing_ok=True)


def push(local: Path, uri: str) -> None:
    """Publish a finished local folder at `uri`: old manifest off first, changed files, stale files off,
    manifest last. Files this mirror pulled or pushed before and left alone are not sent again."""
    fs, base = filesystem(uri)
    have = _local_files(local)
    remote = _remote_files(fs, base)
    if MANIFEST in remote:
        fs.delete_file(f"{base}/{MANIFEST}")
    for name, path in sorted(have.items()):
        if name != MANIFEST and not (name in remote and _same(remote[name], path)):  # unchanged since pulled
            upload(fs, path, f"{base}/{name}", atomic=False)
    for name in remote:
        if name not in have and name != MANIFEST:
            fs.delete_file(f"{base}/{name}")
    if MANIFEST in have:
        upload(fs, have[MANIFEST], f"{base}/{MANIFEST}")
    _stamp(fs, base, local)


def push_file(local: Path, uri: str) -> None:
    """Publish one small file atomically (readers see the old object or the new one)."""
    fs, inner = filesystem(uri)
    upload(fs, local, inner)
    _stamp(fs, inner, local, single=True)


def _stamp(fs: Any, base: str, local: Path, single: bool = False) -> None:
    """Give local copies the remote mtimes, so a later pull sees them as up to date."""
    remote = {"": fs.get_file_info(base)} if single else _remote_files(fs, base)
    for name, info in remote.items():
        path = local / name if name else local
        if info.mtime is not None and path.is_file() and path.stat().st_size == info.size:
            os.utime(path, (info.mtime.timestamp(), info.mtime.timestamp()))


def delete(uri: str) -> None:
    """Remove a remote folder (or file) if present."""
    import pyarrow.fs as pafs

    fs, base = filesystem(uri)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(base)
    elif info.type == pafs.FileType.File:
        fs.delete_file(base)
