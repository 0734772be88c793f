"""Pipelines: a YAML list of stages (ingest, generators, search, export, pretrain, evaluate, report) run in order.

Every stage is validated when the file is loaded, so a typo in the last stage fails before hours of
work, and every stage skips itself when its output already matches (ingest and generators by
manifest, a search whose trials all finished, an evaluation whose jobs are all on disk), so an
interrupted run resumes by running the same command again. The stages themselves, and how each reads
its settings, are in `vdes_tune.stages`; this module only reads the file and runs them in order.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from vdes_tune.config import resolve_shipped
from vdes_tune.errors import BadInputError

# Inside the package so an installed wheel has them; the checkout's pipelines/ links here.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped" / "pipelines"


@dataclass(frozen=True)
class Step:
    """One validated stage of a pipeline: its kind (a registered stage) and its typed settings."""

    kind: str
    settings: Any

    @property
    def label(self) -> str:
        from vdes_tune.stages import STAGES

        name = STAGES.get(self.kind).label(self.settings)
        return f"{self.kind}" + (f" {name}" if name else "")


@dataclass(frozen=True)
class Pipeline:
    """A named list of stages read from a YAML file."""

    name: str
    path: str
    stages: tuple[Step, ...]
    description: str = ""


def resolve_pipeline_path(spec: str | Path) -> Path:
    """A file path, or the name of a shipped pipeline (`smoke`, `paper`)."""
    return resolve_shipped(spec, SHIPPED_DIR, "pipeline")


def load_pipeline(spec: str | Path) -> Pipeline:
    """Read and validate every stage of a pipeline file."""
    path = resolve_pipeline_path(spec)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read pipeline: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), list) or not doc["stages"]:
        raise BadInputError(f"{path}: expected a mapping with a non-empty `stages` list")
    unknown = sorted(set(doc) - {"name", "description", "stages"})
    if unknown:
        raise BadInputError(f"{path}: unknown top-level field(s) {unknown}")
    from vdes_tune.stages import STAGES

    steps = []
    for i, item in enumerate(doc["stages"]):
        where = f"{path}: stages[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise BadInputError(f"{where}: expected a one-key mapping like `- ingest: {{...}}`")
        (kind, body), = item.items()
        if kind not in STAGES:
            raise BadInputError(f"{where}: unknown stage {kind!r}; stages are {', '.join(STAGES.names())}")
        try:
            steps.append(Step(kind, STAGES.get(kind).parse(body if body is not None else {})))
        except BadInputError as exc:
            raise BadInputError(f"{where} ({kind}): {exc}") from exc
    return Pipeline(str(doc.get("name") or path.stem), str(path), _link_pretrain(steps, path),
                    str(doc.get("description", "")))


def _link_pretrain(steps: list[Step], path: Path) -> tuple[Step, ...]:
    """Give each `pretrain: {run: R}` the settings of the evaluate stage of run R after it, and require one
    before every evaluation that reads a generator no `vdes` entry names."""
    from vdes_tune.evaluation.jobs import needs_pretrain

    evaluations = {i: s.settings for i, s in enumerate(steps) if s.kind == "evaluate"}
    linked = list(steps)
    for i, step in enumerate(steps):
        if step.kind == "pretrain":
            later = [e for j, e in evaluations.items() if j > i and e.run == step.settings]
            if not later:
                raise BadInputError(f"{path}: stages[{i}] (pretrain): no evaluate stage of run {step.settings!r} "
                                    f"after it")
            linked[i] = replace(step, settings=later[0])
    for i, settings in evaluations.items():
        prepared = any(s.kind == "pretrain" and s.settings is settings for s in linked[:i])
        if needs_pretrain(settings.config) and not prepared:
            raise BadInputError(f"{path}: stages[{i}] (evaluate): it reads generators no stage makes; add "
                                f"`- pretrain: {{run: {settings.run}}}` before it, or name finished sets in `vdes`")
    return tuple(linked)


def run_pipeline(pipe: Pipeline, data: str | Path, work: str | Path, address: str | None = None,
                 log: Callable[[str], None] = print, verify: bool = False) -> list[dict[str, Any]]:
    """Run the stages in order in one Ray session; returns one summary per stage. `data` and `work` may be
    URIs (`s3://`, `gs://`): then this machine works in a local mirror and every node reads and writes there.
    A stage is up to date only when its files verify: sizes always, content hashes too with `verify`."""
    from vdes_tune.remote import is_uri
    from vdes_tune.runtime import ray_session
    from vdes_tune.stages import STAGES, Context
    from vdes_tune.workspace import Workspace

    workspace = Workspace.at(work)
    data = data if is_uri(data) else Path(data).expanduser().resolve()
    workspace.root.mkdir(parents=True, exist_ok=True)
    # Every path is absolute from here on. Work from the workspace: under `ray job submit` the current
    # folder is the job's working_dir, which Ray may delete when the last actor using it exits, and
    # torch asks for the current folder on some imports. The caller's folder is restored afterwards.
    try:
        before: str | None = os.getcwd()
    except FileNotFoundError:
        before = None
    os.chdir(workspace.root)
    done = []
    try:
        ctx = Context(workspace, data, address, verify=verify, log=log)
        with ray_session(address, log_dir=workspace.root / "logs", name=f"run-{pipe.name}"):
            for i, stage in enumerate(pipe.stages, start=1):
                log(f"[run] {pipe.name} {i}/{len(pipe.stages)}: {stage.label}")
                start = time.perf_counter()
                summary = STAGES.get(stage.kind).run(stage.settings, ctx)
                if summary.get("failed"):
                    raise RuntimeError(f"{stage.label}: {len(summary['failed'])} failed: {summary['failed']}")
                summary.update({"stage": stage.kind, "label": stage.label,
                                "seconds": round(time.perf_counter() - start, 2)})
                state = "skipped (up to date)" if summary.get("skipped") else f"done in {summary['seconds']:.1f} s"
                log(f"[run] {stage.label}: {state}")
                done.append(summary)
    finally:
        if before is not None and os.path.isdir(before):
            os.chdir(before)
    return done
