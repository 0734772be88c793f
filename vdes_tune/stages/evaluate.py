"""The evaluate stage: every architecture trained `repeats` times on a pool of Ray actors (paper section 4)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from vdes_tune.config import EvalOptions, EvaluateConfig, from_dict, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.stages.contract import Context, Stage, mapping
from vdes_tune.workspace import Workspace

# The EvalOptions a pipeline or a command sets; the rest come from the run (cluster, --verify, --force).
OPTION_FIELDS = ("run", "actors", "cpus_per_actor", "gpu_memory_gb", "calibration")


@dataclass(frozen=True)
class EvaluateStage:
    """What to evaluate (the EvaluateConfig, its `configs` as written) and how (EvalOptions)."""

    config: EvaluateConfig
    options: EvalOptions

    @property
    def run(self) -> str:
        return self.options.run


def parse(body: Any) -> EvaluateStage:
    """EvaluateConfig fields and the options in OPTION_FIELDS, from one mapping."""
    body = mapping(body, (*(f.name for f in fields(EvaluateConfig)), *OPTION_FIELDS))
    options = {k: body.pop(k) for k in OPTION_FIELDS if k in body}
    options = {k: v for k, v in options.items() if v is not None}  # gpu_memory_gb null: the card's own memory
    return EvaluateStage(from_dict(EvaluateConfig, body), from_dict(EvalOptions, options))


def find_best_file(spec: str, workspace: Workspace) -> Path:
    """A best-configuration file: as given, under the workspace, or best/<experiment>.yaml by name."""
    workspace.pull(workspace.root / "best")  # a URI workspace's best/ comes to the local mirror
    root = workspace.root
    for candidate in (Path(spec), root / spec, root / "best" / f"{spec}.yaml"):
        if candidate.is_file():
            return candidate.resolve()
    raise BadInputError(f"--configs {spec}: no such file, nor {workspace.spec}/{spec}, nor "
                        f"{workspace.spec}/best/{spec}.yaml (see `vdes-tune export`)")


def resolved(stage: EvaluateStage, workspace: Workspace) -> EvaluateConfig:
    """The EvaluateConfig with every best file found (written relative to the workspace, or by name)."""
    found = [str(find_best_file(str(p), workspace)) for p in stage.config.configs]
    return from_dict(EvaluateConfig, {**to_dict(stage.config), "configs": found})


def run(stage: EvaluateStage, ctx: Context) -> dict[str, Any]:
    """Run every missing job of eval/<run>/ and write results.parquet; its `failed` lists jobs that failed."""
    from vdes_tune.evaluation.repeats import evaluate

    opts = replace(stage.options, address=ctx.address, verify=ctx.verify, force=ctx.force)
    return evaluate(resolved(stage, ctx.workspace), ctx.workspace.spec, opts, log=ctx.log)


STAGE = Stage("evaluate", "eval/<run>/: one record per (architecture, repeat), results.parquet", parse, run,
              label=lambda s: s.run)
