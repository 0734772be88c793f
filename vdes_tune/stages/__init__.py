"""The stage layer: every stage of the study behind one contract (`contract.Stage`), registered by name in
the order a pipeline runs them. `vdes-tune run` looks a pipeline's stages up here, and each command parses
its flags with the same `parse` and runs the same `run`, so the two cannot assemble a stage differently."""

from __future__ import annotations

from typing import Any

from vdes_tune.registry import Registry
from vdes_tune.stages import evaluate, export, generators, ingest, pretrain, report, search
from vdes_tune.stages.contract import Context, Stage

STAGES: Registry[Stage] = Registry("stage")
for _module in (ingest, generators, search, export, pretrain, evaluate, report):
    STAGES.register(_module.STAGE.name)(_module.STAGE)


def run_stage(name: str, body: Any, ctx: Context) -> dict[str, Any]:
    """Parse `body` as the settings of stage `name` and run it: what every command does."""
    stage = STAGES.get(name)
    return stage.run(stage.parse(body), ctx)


__all__ = ["STAGES", "Context", "Stage", "run_stage"]
