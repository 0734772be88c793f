"""The contract every stage keeps: its settings parsed once from a mapping, then run against a workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vdes_tune.errors import BadInputError
from vdes_tune.workspace import Workspace


@dataclass(frozen=True)
class Context:
    """Where and how stages run: the same for every stage of one pipeline run or one command."""

    workspace: Workspace
    data: str | Path | None = None  # the raw dataset (folder or URI): ingest reads it
    address: str | None = None  # Ray cluster; None: a local Ray on 127.0.0.1
    num_cpus: int | None = None  # CPUs of that local Ray
    verify: bool = False  # up to date only when content hashes match too, not only sizes
    force: bool = False  # redo a stage even when its outputs are up to date
    log: Callable[[str], None] = print


def _no_label(settings: Any) -> str:
    return ""


@dataclass(frozen=True)
class Stage:
    """One stage: `parse` reads its settings from a pipeline's YAML mapping (a command builds the same mapping
    from its flags), `run` makes its outputs and returns a JSON-ready summary whose `skipped` is true when
    they were already up to date, and whose non-empty `failed` means the stage failed."""

    name: str
    makes: str  # what it writes, in a few words
    parse: Callable[[Any], Any]
    run: Callable[[Any, Context], dict[str, Any]]
    label: Callable[[Any], str] = _no_label  # what tells two stages of one kind apart in a pipeline's log


def mapping(body: Any, known: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A stage's YAML body as a dict (empty for none), rejecting fields outside `known` by name."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadInputError("expected a mapping of settings")
    unknown = sorted(set(body) - set(known)) if known is not None else []
    if unknown:
        raise BadInputError(f"unknown field(s) {unknown}; known: {', '.join(known or ())}")
    return dict(body)
