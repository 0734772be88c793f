"""Errors that map onto the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path


class BadInputError(Exception):
    """Bad usage or bad input; the message names the file, row or field (exit code 2)."""


class UnreadableImage(ValueError):
    """A file that is not a decodable 8-bit image (JPEG, PNG or DICOM); `reason` is the message without the
    path. Ingest lists it as a rejection; `generators apply` skips the file, naming it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason

