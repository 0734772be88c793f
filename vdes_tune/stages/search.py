"""The search stage: a Ray Tune search of one space on the ingested train and validation splits."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

from vdes_tune.config import SearchOptions, from_dict
from vdes_tune.errors import BadInputError
from vdes_tune.stages.contract import Context, Stage, mapping

# Set by the run (the cluster) or by `set`, not by a stage's own fields.
_NOT_FIELDS = ("address", "overrides")
OPTION_FIELDS = tuple(f.name for f in fields(SearchOptions) if f.name not in _NOT_FIELDS)
FIELDS = ("space", "set", "num_samples", *OPTION_FIELDS)


@dataclass(frozen=True)
class SearchStage:
    """A loaded search space (with its edits) and how its search runs."""

    space: Any  # search.space.SearchSpace
    options: SearchOptions


def _overrides(edits: Any) -> list[str]:
    """`set` as KEY=VALUE edits: a mapping (a pipeline's `set: {train.epochs: 2}`) or a list of them."""
    if isinstance(edits, dict):
        return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, v in edits.items()]
    return [str(e) for e in edits or []]


def parse(body: Any) -> SearchStage:
    """The search stage's settings: `space` (a shipped name or a file), its `set` edits and `num_samples`, and
    the SearchOptions fields (name defaults to the space's)."""
    from vdes_tune.search.space import load_space, with_samples

    body = mapping(body, FIELDS)
    if "space" not in body:
        raise BadInputError("field 'space' (a shipped space name or a file) is required")
    overrides = _overrides(body.get("set"))
    space = with_samples(load_space(str(body["space"]), overrides), body.get("num_samples"))
    options = {k: body[k] for k in OPTION_FIELDS if body.get(k) is not None}
    opts = from_dict(SearchOptions, {**options, "overrides": overrides})
    return SearchStage(space, replace(opts, name=opts.name or space.name))


def run(stage: SearchStage, ctx: Context) -> dict[str, Any]:
    """Run or resume the search; skipped (its summary read back) when the experiment is over for the same
    space and dataset."""
    from vdes_tune.search.export import leaderboard, load_experiment
    from vdes_tune.search.runner import experiment_location, run_search, search_finished, summarise

    opts = replace(stage.options, address=ctx.address)
    if search_finished(stage.space, ctx.workspace.spec, opts):
        path = experiment_location(ctx.workspace, opts)
        return {**summarise(leaderboard(load_experiment(path)), stage.space, opts.name, path), "skipped": True}
    return {**run_search(stage.space, ctx.workspace.spec, opts), "skipped": False}


STAGE = Stage("search", "search/<experiment>: the Ray Tune trials of one space", parse, run,
              label=lambda s: s.options.name)
