"""The export stage: a finished search's best configuration per architecture, for the final evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vdes_tune.config import from_dict
from vdes_tune.errors import BadInputError
from vdes_tune.stages.contract import Context, Stage, mapping


@dataclass(frozen=True)
class ExportStage:
    """Which experiment to export, and its storage when not <work>/search."""

    experiment: str
    storage: str = ""


def parse(body: Any) -> ExportStage:
    """The export stage's settings: `experiment` (required) and `storage`."""
    body = mapping(body, ("experiment", "storage"))
    if "experiment" not in body:
        raise BadInputError("field 'experiment' (the search's name) is required")
    return from_dict(ExportStage, {**body, "experiment": str(body["experiment"])})


def run(stage: ExportStage, ctx: Context) -> dict[str, Any]:
    """Write best/<experiment>.yaml and best/<experiment>-leaderboard.csv (cheap: always rewritten)."""
    from vdes_tune.search.export import export

    return export(stage.experiment, ctx.workspace.spec, stage.storage)


STAGE = Stage("export", "best/<experiment>.yaml: the best configuration per architecture", parse, run,
              label=lambda s: s.experiment)
