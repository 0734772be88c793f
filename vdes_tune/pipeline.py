"""Pipelines: a YAML list of stages (ingest, generators, search, export, evaluate, report) run in order.

Every stage is validated when the file is loaded, so a typo in the last stage fails before hours of
work, and every stage skips itself when its output already matches (ingest and generators by
manifest, a search whose trials all finished, an evaluation whose jobs are all on disk), so an
interrupted run resumes by running the same command again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from vdes_tune.config import EvaluateConfig, GeneratorConfig, IngestConfig, from_dict, resolve_shipped, to_dict
from vdes_tune.errors import BadInputError

STAGES = ("ingest", "generators", "search", "export", "evaluate", "report")
# Inside the package so an installed wheel has them; the checkout's pipelines/ links here.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped" / "pipelines"
SEARCH_OPTIONS = ("max_concurrent", "cpus_per_trial", "gpu_memory_gb", "max_failures", "num_samples")
EVAL_OPTIONS = ("run", "actors", "cpus_per_actor", "gpu_memory_gb")


@dataclass(frozen=True)
class Stage:
    """One validated stage: its kind and its typed settings."""

    kind: str
    settings: Any
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = self.options.get("name") or self.options.get("run") or self.options.get("experiment") or ""
        return f"{self.kind}" + (f" {name}" if name else "")


@dataclass(frozen=True)
class Pipeline:
    """A named list of stages read from a YAML file."""

    name: str
    path: str
    stages: tuple[Stage, ...]
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
    stages = []
    for i, item in enumerate(doc["stages"]):
        where = f"{path}: stages[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise BadInputError(f"{where}: expected a one-key mapping like `- ingest: {{...}}`")
        (kind, body), = item.items()
        if kind not in STAGES:
            raise BadInputError(f"{where}: unknown stage {kind!r}; stages are {', '.join(STAGES)}")
        try:
            stages.append(_stage(kind, body if body is not None else {}))
        except BadInputError as exc:
            raise BadInputError(f"{where} ({kind}): {exc}") from exc
    return Pipeline(str(doc.get("name") or path.stem), str(path), tuple(stages), str(doc.get("description", "")))


def _split(body: dict[str, Any], option_keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({k: v for k, v in body.items() if k not in option_keys},
            {k: v for k, v in body.items() if k in option_keys})


def _stage(kind: str, body: Any) -> Stage:
    if kind == "generators":
        if not isinstance(body, list) or not body:
            raise BadInputError("expected a list of generators, each {name, model, ...GeneratorConfig fields}")
        made = []
        for g in body:
            g = dict(g or {})
            name, synthesize = g.pop("name", None), g.pop("synthesize", True)
            if not name:
                raise BadInputError("every generator needs a name (its generators/<name> and vdes/<name> folders)")
            made.append((str(name), GeneratorConfig.for_model(g.pop("model", "unet"), **g), bool(synthesize)))
        return Stage(kind, tuple(made))
    if not isinstance(body, dict):
        raise BadInputError("expected a mapping of settings")
    if kind == "ingest":
        return Stage(kind, from_dict(IngestConfig, body))
    if kind == "search":
        from vdes_tune.search.space import load_space, with_samples

        settings, options = _split(body, SEARCH_OPTIONS + ("space", "name", "set"))
        if settings:
            raise BadInputError(f"unknown field(s) {sorted(settings)}; known: space, name, set, "
                                f"{', '.join(SEARCH_OPTIONS)}")
        if "space" not in options:
            raise BadInputError("field 'space' (a shipped space name or a file) is required")
        edits = options.get("set") or {}
        overrides = [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                     for k, v in edits.items()] if isinstance(edits, dict) else list(edits)
        space = with_samples(load_space(options["space"], overrides), options.get("num_samples"))
        return Stage(kind, space, {**options, "set": overrides, "name": options.get("name") or space.name})
    if kind == "export":
        if "experiment" not in body or set(body) - {"experiment"}:
            raise BadInputError("expected exactly the field 'experiment'")
        return Stage(kind, None, {"experiment": str(body["experiment"])})
    if kind == "evaluate":
        settings, options = _split(body, EVAL_OPTIONS)
        return Stage(kind, from_dict(EvaluateConfig, settings), {"run": "main", **options})
    if set(body) - {"run"}:
        raise BadInputError("expected only the field 'run'")
    return Stage(kind, None, {"run": str(body.get("run", "main"))})


def run_pipeline(pipe: Pipeline, data: str | Path, work: str | Path, address: str | None = None,
                 log: Callable[[str], None] = print, verify: bool = False) -> list[dict[str, Any]]:
    """Run the stages in order in one Ray session; returns one summary per stage. `data` and `work` may be
    URIs (`s3://`, `gs://`): then this machine works in a local mirror and every node reads and writes there.
    A stage is up to date only when its files verify: sizes always, content hashes too with `verify`."""
    from vdes_tune.remote import is_uri
    from vdes_tune.runtime import ray_session
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
        with ray_session(address, log_dir=workspace.root / "logs", name=f"run-{pipe.name}"):
            for i, stage in enumerate(pipe.stages, start=1):
                log(f"[run] {pipe.name} {i}/{len(pipe.stages)}: {stage.label}")
                start = time.perf_counter()
                summary = _run_stage(stage, data, workspace, address, log, verify)
                summary.update({"stage": stage.kind, "label": stage.label,
                                "seconds": round(time.perf_counter() - start, 2)})
                state = "skipped (up to date)" if summary.get("skipped") else f"done in {summary['seconds']:.1f} s"
                log(f"[run] {stage.label}: {state}")
                done.append(summary)
    finally:
        if before is not None and os.path.isdir(before):
            os.chdir(before)
    return done


def _run_stage(stage: Stage, data: str | Path, workspace: Any, address: str | None,
               log: Callable[[str], None], verify: bool = False) -> dict[str, Any]:
    if stage.kind == "ingest":
        from vdes_tune.stages import ingest

        return ingest.run(stage.settings, workspace, data, address=address, verify=verify).to_dict()
    if stage.kind == "generators":
        from vdes_tune.stages import generators

        out = {"skipped": True, "generators": []}
        for name, cfg, synthesize in stage.settings:
            trained = generators.train(cfg, workspace, name, verify=verify)
            made = generators.synthesize(name, workspace, address=address, verify=verify) if synthesize else None
            out["skipped"] &= bool(trained["skipped"]) and (made is None or made.skipped)
            out["generators"].append({"name": name, "model": cfg.model, "config": to_dict(cfg)})
        return out
    if stage.kind == "search":
        from vdes_tune.search.runner import SearchOptions, run_search, search_finished

        o = stage.options
        opts = SearchOptions(name=o["name"], max_concurrent=o.get("max_concurrent"),
                             gpu_memory_gb=_gb(o.get("gpu_memory_gb")),
                             cpus_per_trial=float(o.get("cpus_per_trial", 1.0)),
                             max_failures=int(o.get("max_failures", 2)), address=address,
                             overrides=tuple(o["set"]))
        if search_finished(stage.settings, workspace.spec, opts):
            return {"experiment": o["name"], "skipped": True}
        summary = run_search(stage.settings, workspace.spec, opts)
        return {k: summary[k] for k in ("experiment", "path", "trials", "finished", "infeasible", "errored")}
    if stage.kind == "export":
        from vdes_tune.search.export import export

        return export(stage.options["experiment"], workspace.spec)
    if stage.kind == "evaluate":
        from vdes_tune.evaluation.repeats import EvalOptions, evaluate

        o = stage.options
        # Best files are named relative to the workspace (best/<experiment>.yaml) in a pipeline.
        workspace.pull(workspace.root / "best")
        configs = tuple(str(p if Path(p).is_absolute() else workspace.root / p) for p in stage.settings.configs)
        cfg = from_dict(EvaluateConfig, {**to_dict(stage.settings), "configs": list(configs)})
        opts = EvalOptions(run=str(o["run"]), actors=int(o.get("actors", 0)),
                           cpus_per_actor=float(o.get("cpus_per_actor", 1.0)),
                           gpu_memory_gb=_gb(o.get("gpu_memory_gb")), address=address, verify=verify)
        summary = evaluate(cfg, workspace.spec, opts, log=log)
        if summary["failed"]:
            raise RuntimeError(f"evaluate: {len(summary['failed'])} job(s) failed: {summary['failed']}")
        return summary
    from vdes_tune.report import study

    out = study.build(workspace.spec, stage.options["run"])
    return {k: v for k, v in out.items() if k not in ("tables", "answer_detail")}


def _gb(value: Any) -> float | None:
    """A pipeline's `gpu_memory_gb`: absent means the card's own memory."""
    return None if value is None else float(value)
