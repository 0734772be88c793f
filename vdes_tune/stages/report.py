"""The report stage: report/<run>/ from an evaluation (the answer first, figures, tables), or
report/search-<experiment>/ from a search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vdes_tune.config import from_dict
from vdes_tune.stages.contract import Context, Stage, mapping


@dataclass(frozen=True)
class ReportStage:
    """Which evaluation (or, with `search`, which search experiment) to report."""

    run: str = "main"
    margin: float | None = None  # non-inferiority margin on test F1; None: the evaluation's analysis.margin
    search: str = ""
    storage: str = ""  # with search: Tune storage when not <work>/search


def parse(body: Any) -> ReportStage:
    """ReportStage fields from one mapping."""
    return from_dict(ReportStage, mapping(body, ("run", "margin", "search", "storage")))


def build(stage: ReportStage, ctx: Context) -> dict[str, Any]:
    """Write the report; returns its paths with the tables and the answer (for the terminal)."""
    from vdes_tune.report import search, study

    if stage.search:
        return search.build(ctx.workspace.spec, stage.search, stage.storage)
    return study.build(ctx.workspace.spec, stage.run, margin=stage.margin)


def run(stage: ReportStage, ctx: Context) -> dict[str, Any]:
    """Write the report; returns its paths and counts (JSON-ready)."""
    return {k: v for k, v in build(stage, ctx).items() if k not in ("tables", "answer_detail")}


STAGE = Stage("report", "report/<run>/: report.md, report.html, figures/, tables/", parse, run,
              label=lambda s: f"search-{s.search}" if s.search else s.run)
