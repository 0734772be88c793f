"""Generator stages: train a U-Net/PT or CycleGAN into generators/<name>/, synthesise vdes/<name>/ shards."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from vdes_tune import __version__
from vdes_tune.config import GeneratorConfig, config_hash, from_yaml, to_dict
from vdes_tune.errors import BadInputError
from vdes_tune.stages.contract import Context, Stage, mapping
from vdes_tune.workspace import (SCHEMA_VERSION, Workspace, atomic_dir, check_outputs, dataset_fingerprint,
                                 manifest_matches, output_index, read_manifest, sweep_debris, write_json)


ROWS_PER_SHARD = 256


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def is_trained(cfg: GeneratorConfig, workspace: Workspace, name: str, verify: bool = False) -> bool:
    """True when generators/<name> holds a finished training of `cfg` on the current dataset whose files
    verify (sizes; content hashes too with `verify`)."""
    workspace.pull(workspace.dataset.manifest)
    workspace.pull(workspace.generator(name))
    return manifest_matches(workspace.generator(name), config_hash(cfg),
                            _digest(dataset_fingerprint(workspace.dataset)), verify)


def train(cfg: GeneratorConfig, workspace: Workspace, name: str | None = None, force: bool = False,
          on_epoch: Callable[[dict[str, Any]], None] | None = None, verify: bool = False) -> dict[str, Any]:
    """Train `cfg.model` on the ingested train split into generators/<name>; a no-op when already done."""
    from vdes_tune.inference.model_card import write_model_card
    from vdes_tune.training.generators import run_generator_training

    name = name or cfg.model
    final = workspace.generator(name)
    sweep_debris(final)
    resume = final.with_name(f".{final.name}.resume")  # per-epoch checkpoints of an unfinished run
    if force:
        shutil.rmtree(resume, ignore_errors=True)
    if not force and is_trained(cfg, workspace, name, verify):
        return {**json.loads((final / "metrics.json").read_text()), "skipped": True,
                "output": workspace.location(final)}
    inputs = dataset_fingerprint(workspace.dataset)
    chash, ihash = config_hash(cfg), _digest(inputs)
    workspace.pull(workspace.dataset.shards)
    check_outputs(workspace.dataset.root)
    start = time.perf_counter()
    dataset = read_manifest(workspace.dataset.root) or {}
    with atomic_dir(final) as tmp:
        summary = run_generator_training(cfg, workspace.dataset.shards, tmp, on_epoch, resume, f"{chash}-{ihash}")
        manifest = {
            "schema_version": SCHEMA_VERSION, "stage": "generators.train", "vdes_tune_version": __version__,
            "name": name, "config": to_dict(cfg), "config_hash": chash, "inputs": inputs, "inputs_hash": ihash,
            "seeds": {"train": cfg.seed}, "rows": summary["crops"], "best_epoch": summary["best_epoch"],
            # `apply` tiles per-image-normalised generators at the size they trained on.
            "crop_size": dataset.get("config", {}).get("crop_size"),
            "seconds": round(time.perf_counter() - start, 2), "created_unix": time.time(), "complete": True,
        }
        write_model_card(tmp, manifest, dataset)
        write_json(tmp / "manifest.json", {**manifest, "outputs": output_index(tmp)})
    workspace.push(final)
    shutil.rmtree(resume, ignore_errors=True)  # finished: nothing left to resume
    return {**summary, "skipped": False, "output": workspace.location(final)}


@dataclass
class SynthesizeSummary:
    """What a synthesize run did."""

    output: str
    skipped: bool
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def synthesize(name: str, workspace: Workspace, force: bool = False, address: str | None = None,
               num_cpus: int | None = None, batch_size: int = 32, actors: int | None = None,
               device: str = "auto", verify: bool = False) -> SynthesizeSummary:
    """Write vdes/<name>/split=*/ shards: every crop's LE through the trained generator, on Ray Data actors."""
    import ray

    from vdes_tune.data import shards
    from vdes_tune.runtime import ray_session
    from vdes_tune.training.generators import WEIGHTS, Synthesizer

    gen_dir, final = workspace.generator(name), workspace.vdes(name)
    workspace.pull(workspace.dataset.manifest)
    workspace.pull(gen_dir)
    workspace.pull(final)
    sweep_debris(final)
    made = read_manifest(gen_dir)
    if not made or not made.get("complete"):
        raise BadInputError(f"{gen_dir}: no finished generator '{name}' (run `vdes-tune generators train` first)")
    cfg = from_yaml(GeneratorConfig, gen_dir / "config.yaml")
    weights = gen_dir / WEIGHTS
    inputs = {**dataset_fingerprint(workspace.dataset),
              "generator_config_hash": made["config_hash"],
              "generator_weights": hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}
    chash, ihash = config_hash(cfg), _digest(inputs)
    if not force and manifest_matches(final, chash, ihash, verify):
        return SynthesizeSummary(workspace.location(final), True, read_manifest(final)["rows"])
    check_outputs(gen_dir)
    if not workspace.uri:  # a URI workspace's shards are read there by the workers, not mirrored here
        check_outputs(workspace.dataset.root)
    if batch_size < 1:
        raise BadInputError(f"--batch-size must be >= 1 (got {batch_size})")
    start = time.perf_counter()
    with ray_session(address, num_cpus, workspace.root / "logs", "synthesize"), shards.ordered_execution():
        gpus = int(ray.cluster_resources().get("GPU", 0)) if device != "cpu" else 0
        if device == "cuda" and not gpus:
            raise BadInputError("device 'cuda' requested but the Ray cluster has no GPU")
        # One actor per GPU, else one single-threaded actor per CPU but one: Ray Data's read and write
        # tasks need a free CPU, and a pool holding them all would wait forever.
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = actors or max(1, gpus or cpus - 1)
        if not gpus and pool >= cpus > 1:
            raise BadInputError(f"--actors {pool}: leave at least one of the cluster's {cpus} CPUs for Ray Data")
        kwargs = {"weights": workspace.location(weights), "cfg": to_dict(cfg), "device": "cuda" if gpus else "cpu"}
        with atomic_dir(final) as tmp:
            with workspace.staged(tmp) as target:
                rows = shards.synthesize(workspace.location(workspace.dataset.shards), target, Synthesizer, kwargs,
                                         batch_size, pool, 1 if gpus else 0, ROWS_PER_SHARD)
            write_json(tmp / "manifest.json", {
                "schema_version": SCHEMA_VERSION, "stage": "generators.synthesize", "vdes_tune_version": __version__,
                "name": name, "config": to_dict(cfg), "config_hash": chash, "inputs": inputs, "inputs_hash": ihash,
                "rows": rows, "actors": pool, "device": kwargs["device"], "outputs": output_index(tmp),
                "created_unix": time.time(), "complete": True,
            })
        workspace.push(final)
    return SynthesizeSummary(workspace.location(final), False, rows, round(time.perf_counter() - start, 2))


@dataclass(frozen=True)
class GeneratorJob:
    """One declared generator: its folder names (generators/<name>, vdes/<name>), its config, and whether its
    virtual DES shards are written after training."""

    name: str
    config: GeneratorConfig
    synthesize: bool = True


def entry(body: Any) -> GeneratorJob:
    """One generator from `{name, model, synthesize, ...GeneratorConfig fields}` (a pipeline's list item, or
    what `vdes-tune generators train` builds from its flags)."""
    g = mapping(body)
    name, synthesize = g.pop("name", None), g.pop("synthesize", True)
    if not name:
        raise BadInputError("every generator needs a name (its generators/<name> and vdes/<name> folders)")
    return GeneratorJob(str(name), GeneratorConfig.for_model(g.pop("model", "unet"), **g), bool(synthesize))


def parse(body: Any) -> tuple[GeneratorJob, ...]:
    """The generators stage's list of generators."""
    if not isinstance(body, list) or not body:
        raise BadInputError("expected a list of generators, each {name, model, ...GeneratorConfig fields}")
    return tuple(entry(g) for g in body)


def _run_stage(jobs: tuple[GeneratorJob, ...], ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"skipped": True, "generators": []}
    for job in jobs:
        trained = train(job.config, ctx.workspace, job.name, ctx.force, verify=ctx.verify)
        made = synthesize(job.name, ctx.workspace, ctx.force, ctx.address, ctx.num_cpus,
                          verify=ctx.verify) if job.synthesize else None
        out["skipped"] &= bool(trained["skipped"]) and (made is None or made.skipped)
        out["generators"].append({"name": job.name, "model": job.config.model, "config": to_dict(job.config)})
    return out


STAGE = Stage("generators", "generators/<name>: trained LE -> DES networks; vdes/<name>: their virtual DES",
              parse, _run_stage)
