"""Experiment storage that may be a local folder or a URI (`s3://`, `gs://`, `file://`): small files only."""

from __future__ import annotations

from vdes_tune.remote import is_uri, read_bytes, write_bytes

__all__ = ["SIDECAR", "experiment_path", "is_uri", "read_text", "write_text"]

SIDECAR = "vdes_search.json"  # what made the experiment: space, options, dataset; checked on resume


def experiment_path(storage: str, name: str) -> str:
    """Where Tune keeps the experiment: `<storage>/<name>`."""
    return f"{storage.rstrip('/')}/{name}"


def read_text(path: str) -> str | None:
    """A small text file from a local path or URI; None when absent."""
    try:
        return read_bytes(path).decode()
    except OSError:  # FileNotFoundError included
        return None


def write_text(path: str, text: str) -> None:
    """Write a small text file to a local path or URI, atomically."""
    write_bytes(path, text.encode())
