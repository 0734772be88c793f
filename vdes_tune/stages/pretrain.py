"""The pretrain stage: the generators an evaluation reads that no earlier stage made (#4's U-Net/PT with the
searched shape, #7's Pix2Pix), each trained once on a Ray task (a GPU when there is one) and synthesised.

Its settings are its evaluation's: a pipeline names the evaluate stage (`- pretrain: {run: paper}`) and
`vdes-tune evaluate` runs it first. A generator is named by its config (unet-<hash>), so a finished one is
found again and never trained twice."""

from __future__ import annotations

from typing import Any

from vdes_tune.config import GeneratorConfig, from_dict, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.stages.contract import Context, Stage, mapping
from vdes_tune.stages.evaluate import EvaluateStage, resolved
from vdes_tune.workspace import Workspace


def parse(body: Any) -> str:
    """The run of the evaluate stage whose generators this stage makes (a pipeline links the two)."""
    body = mapping(body, ("run",))
    if "run" not in body:
        raise BadInputError("field 'run' (the evaluate stage whose generators to pre-train) is required")
    return str(body["run"])


def run(stage: EvaluateStage, ctx: Context) -> dict[str, Any]:
    """Train (once) and synthesise every generator the evaluation reads and no `vdes` entry names (`force`
    is the evaluation's: it discards finished jobs, never a finished generator)."""
    import ray

    from vdes_tune.evaluation.jobs import generator_needs
    from vdes_tune.runtime import ray_session
    from vdes_tune.stages import generators

    workspace, cpus = ctx.workspace, stage.options.cpus_per_actor
    needs = {a: n for a, n in generator_needs(resolved(stage, workspace)).items() if n.config is not None}
    to_train = {a: n for a, n in needs.items() if not generators.is_trained(n.config, workspace, n.name, ctx.verify)}
    out: dict[str, Any] = {"run": stage.run, "skipped": True,
                           "generators": [{"arch": a, "name": n.name, "model": n.config.model,
                                           "trained": a in to_train} for a, n in needs.items()]}
    if not needs:
        return out
    for a, n in needs.items():
        if a not in to_train:
            ctx.log(f"[pretrain] #{a}: {n.name} already trained")
    with ray_session(ctx.address, ctx.num_cpus, workspace.root / "logs", "pretrain"):
        if to_train:
            gpus = ray.cluster_resources().get("GPU", 0)
            ctx.log(f"[pretrain] training {', '.join(n.name for n in to_train.values())} once, for "
                    f"{', '.join(f'#{a}' for a in to_train)}")
            task = ray.remote(_train).options(num_cpus=cpus, num_gpus=1 if gpus else 0, max_retries=1)
            ray.get([task.remote(to_dict(n.config), workspace.spec, n.name, cpus)
                     for n in to_train.values()])
        made = [generators.synthesize(n.name, workspace, address=ctx.address, verify=ctx.verify)
                for n in needs.values()]
    out["skipped"] = not to_train and all(m.skipped for m in made)
    return out


def _train(cfg: dict[str, Any], work: str, name: str, cpus: float) -> str:
    import torch

    from vdes_tune.stages import generators

    torch.set_num_threads(max(1, int(cpus)))
    return generators.train(from_dict(GeneratorConfig, cfg), Workspace.at(work), name)["output"]


STAGE = Stage("pretrain", "generators/ and vdes/ of the generators an evaluation reads (unet-<hash>, ...)",
              parse, run, label=lambda s: s.run)
