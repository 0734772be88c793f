"""Experiment storage that may be a local folder or a URI (`s3://`, `gs://`, `file://`): small files only."""

from __future__ import annotations

from vdes_tune.remote import filesystem as _filesystem
from vdes_tune.remote import is_uri

__all__ = ["SIDECAR", "experiment_path", "is_uri", "read_text", "write_text"]

SIDECAR = "vdes_search.json"  # what made the experiment: space, options, dataset; checked on resume


def experiment_path(storage: str, name: str) -> str:
    """Where Tune keeps the experiment: `<storage>/<name>`."""
    return f"{storage.rstrip('/')}/{name}"


def read_text(path: str) -> str | None:
    """A small text file from a local path or URI; None when absent."""
    fs, inner = _filesystem(path)
    try:
        with fs.open_input_stream(inner) as f:
            return f.read().decode()
    except (FileNotFoundError, OSError):
        return None


def write_text(path: str, text: str) -> None:
    """Write a small text file to a local path or URI (rename into place locally)."""
    fs, inner = _filesystem(path)
    parent = inner.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{inner.rsplit('/', 1)[1]}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(text.encode())
    fs.move(tmp, inner)
