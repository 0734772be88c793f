"""The ingest stage: raw CDD-CESM layout or CESM DICOM folder -> catalog, registration, crops, splits, Parquet
shards, QA."""

from __future__ import annotations

import csv
import hashlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vdes_tune import __version__, remote
from vdes_tune.config import IngestConfig, config_hash, from_dict, to_dict, to_yaml
from vdes_tune.data import dicom, qa, shards
from vdes_tune.data.cdd_cesm import RawLayout, Rejection, build_catalog, find_layout
from vdes_tune.data.splits import assign_patients, split_record
from vdes_tune.errors import BadInputError
from vdes_tune.runtime import ray_session
from vdes_tune.stages.contract import Context, Stage, mapping
from vdes_tune.workspace import (SCHEMA_VERSION, Workspace, atomic_dir, hash_files, manifest_matches, output_index,
                                 sweep_debris, write_json)

REJECTED_FIELDS = ("item", "file", "reason", "kind", "stage")


@dataclass
class IngestSummary:
    """What an ingest run did, for the terminal and for `--json`."""

    output: str
    skipped: bool
    pairs_found: int = 0
    pairs_ingested: int = 0
    crops: int = 0
    rejected_bad_input: int = 0
    rejected_excluded: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    boundary_pairs: int = 0
    table1: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def _input_fingerprints(layout: RawLayout) -> dict[str, str]:
    """Images by name, size and mtime (cheap on 2000 JPEGs); annotation files by content."""
    images = [p for d in (layout.le_dir, layout.des_dir) for p in d.iterdir() if p.is_file()]
    parts = {
        "images": hash_files(images, layout.root, content=False),
        "annotations": hash_files([layout.annotations], layout.root, content=True),
        "segmentations": hash_files([layout.segmentations], layout.root, content=True),
    }
    return parts


def _reason_key(reason: str) -> str:
    """Collapse a reason to its kind for the summary (drop names and numbers)."""
    return reason.split(":")[0].split(" (")[0][:80]


def _local_data(data: str | Path) -> tuple[Path, str | None]:
    """(local folder to catalog, URI workers read images from): a URI dataset is mirrored for the catalog."""
    if not remote.is_uri(data):
        return Path(data), None
    uri = str(data).rstrip("/")
    local = remote.mirror_root(uri)
    try:
        remote.pull(uri, local)
    except OSError as exc:
        raise BadInputError(f"{uri}: cannot read the raw dataset there: {exc}") from exc
    if not local.is_dir():
        raise BadInputError(f"{uri}: no raw dataset there (nothing under that prefix)")
    return local, uri


def run(cfg: IngestConfig, workspace: Workspace, data: str | Path, force: bool = False,
        address: str | None = None, num_cpus: int | None = None, verify: bool = False) -> IngestSummary:
    """Ingest the raw dataset at `data` (a path or URI) into `workspace`/dataset; a no-op when nothing changed
    and its files verify (sizes; content hashes too with `verify`)."""
    start = time.perf_counter()
    paths = workspace.dataset
    local_data, data_uri = _local_data(data)
    # A labels CSV at the top marks a DICOM dataset (docs/ingest.md, "DICOM input"); anything else must be CDD-CESM.
    is_dicom = dicom.is_dicom_dataset(local_data)
    layout: RawLayout | dicom.DicomLayout
    if is_dicom:
        layout = dicom.find_dicom_layout(local_data)
        inputs = dicom.input_fingerprints(layout)
    else:
        try:
            layout = find_layout(local_data)  # a missing folder or file fails here, before anything is written
        except BadInputError as exc:
            raise BadInputError(f"{exc} (a DICOM dataset instead needs {dicom.LABELS_NAME} at its top)") from exc
        inputs = _input_fingerprints(layout)
    chash = config_hash(cfg)
    ihash = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    workspace.pull(paths.root)
    sweep_debris(paths.root)
    if not force and manifest_matches(paths.root, chash, ihash, verify):
        previous = json.loads(paths.manifest.read_text())
        return IngestSummary(output=workspace.location(paths.root), skipped=True, **previous["summary"])

    patients: dict[int, str] = {}  # DICOM: catalog patient id -> PatientID
    if isinstance(layout, dicom.DicomLayout):
        catalog, patients = dicom.build_dicom_catalog(layout, cfg)
    else:
        catalog = build_catalog(layout, cfg)
    rejected = list(catalog.rejected)
    _fail_if_strict(cfg, rejected)
    pairs = catalog.pairs
    if pairs.empty:
        raise BadInputError(f"{layout.root}: no usable LE/DES pair ({len(rejected)} inputs rejected; "
                            f"first: {rejected[0].file}: {rejected[0].reason})" if rejected else
                            f"{layout.root}: no images found")
    if data_uri:  # workers read each image from shared storage, never from this machine's mirror
        for key in ("le_path", "des_path"):
            pairs[key] = [remote.join(data_uri, Path(p).relative_to(local_data).as_posix()) for p in pairs[key]]
    rng = np.random.default_rng(cfg.seed)
    overlay_ids = set(rng.choice(pairs["pair_id"].to_numpy(), size=min(cfg.qa_samples, len(pairs)),
                                 replace=False).tolist())

    with ray_session(address, num_cpus, workspace.root / "logs", "ingest"), shards.ordered_execution():
        ds = shards.process_pairs(pairs, cfg, overlay_ids)
        meta = shards.metadata(ds)
        reg = meta[meta["kind"] == "registration"].sort_values("pair_id")
        for rec in meta[meta["kind"].isin(["bad_input", "excluded", "note"])].sort_values(
                ["pair_id", "file"]).itertuples():
            kind = "skipped_region" if rec.kind == "note" else rec.kind
            rejected.append(Rejection(rec.pair_id, rec.file, rec.reason, kind, stage="process"))
        _fail_if_strict(cfg, rejected)
        crops = meta[meta["kind"] == "crop"].sort_values("crop_id").reset_index(drop=True)
        assignment = assign_patients(crops, cfg.split_fractions, cfg.seed)
        crops["split"] = crops["patient_id"].map(assignment)
        with atomic_dir(paths.root) as tmp:
            with workspace.staged(tmp / "shards") as target:
                shard_files = shards.write_shards(ds, dict(zip(crops["crop_id"], crops["split"])),
                                                  target, cfg.rows_per_shard)
            summary = _write_tables(tmp, cfg, pairs, reg, crops, rejected, meta, assignment,
                                     catalog.pairs_seen)
            summary.output = workspace.location(paths.root)
            summary.seconds = round(time.perf_counter() - start, 2)
            (tmp / "config.yaml").write_text(to_yaml(cfg))
            write_json(tmp / "manifest.json", {
                "schema_version": SCHEMA_VERSION, "stage": "ingest", "vdes_tune_version": __version__,
                "config": to_dict(cfg), "config_hash": chash, "inputs": inputs, "inputs_hash": ihash,
                "data": data_uri or str(layout.root), "seeds": {"split": cfg.seed, "crops": cfg.seed},
                **({"input_format": "dicom", "dicom_patient_ids": {str(k): v for k, v in patients.items()}}
                   if is_dicom else {}),
                "rows": {"catalog": len(pairs), "registration": len(reg), "crops": len(crops),
                         "rejected": len(rejected)},
                "shard_files": shard_files,
                "summary": {k: v for k, v in summary.to_dict().items() if k not in ("output", "skipped")},
                "outputs": output_index(tmp), "created_unix": time.time(), "complete": True,
            })
        workspace.push(paths.root)
    return summary


def _fail_if_strict(cfg: IngestConfig, rejected: list[Rejection]) -> None:
    bad = [r for r in rejected if r.kind == "bad_input"]
    if cfg.strict and bad:
        listed = "; ".join(f"{r.file}: {r.reason}" for r in bad[:5])
        raise BadInputError(f"--strict: {len(bad)} bad input(s), nothing written. {listed}"
                            + (" ..." if len(bad) > 5 else ""))


def _write_tables(out: Path, cfg: IngestConfig, pairs: pd.DataFrame, reg: pd.DataFrame, crops: pd.DataFrame,
                  rejected: list[Rejection], meta: pd.DataFrame, assignment: dict[int, str],
                  pairs_seen: int) -> IngestSummary:
    ingested = set(crops["pair_id"])
    reasons = {r.item: r.reason for r in rejected if r.stage == "process" and r.kind != "skipped_region"}
    catalog = pairs.drop(columns=["le_path", "des_path"]).assign(
        status=[("ingested" if p in ingested else "rejected") for p in pairs["pair_id"]],
        reason=[reasons.get(p, "") for p in pairs["pair_id"]],
    )
    catalog.to_parquet(out / "catalog.parquet", index=False)
    reg_cols = ["pair_id", "tx", "ty", "mi", "mi_at_zero", "at_search_boundary", "evaluations", "le_height",
                "le_width", "des_height", "des_width", "seconds"]
    reg[reg_cols].reset_index(drop=True).to_parquet(out / "registration.parquet", index=False)
    crop_cols = ["crop_id", "pair_id", "patient_id", "label", "pathology", "split", "source", "region_line",
                 "centre_x", "centre_y", "origin_x", "origin_y", "tissue_fraction", "lesion_fraction", "height", "width"]
    crops[crop_cols].to_parquet(out / "crops.parquet", index=False)
    write_json(out / "splits.json", split_record(assignment, cfg.split_fractions, cfg.seed))
    with open(out / "rejected.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REJECTED_FIELDS)
        writer.writeheader()
        for r in rejected:
            writer.writerow(dataclasses.asdict(r))
    (out / "qa").mkdir()
    for rec in meta[(meta["kind"] == "registration") & (meta["overlay_png"].map(len) > 0)].itertuples():
        (out / "qa" / f"overlay_{rec.pair_id}.png").write_bytes(rec.overlay_png)
    table = qa.table1(crops)
    table.to_csv(out / "qa" / "table1.csv", index=False)
    (out / "qa" / "table1.md").write_text(qa.table_markdown(table))
    counts: dict[str, int] = {}
    for r in rejected:
        key = f"{r.kind}: {_reason_key(r.reason)}"
        counts[key] = counts.get(key, 0) + 1
    return IngestSummary(
        output="", skipped=False, pairs_found=pairs_seen,
        pairs_ingested=len(ingested), crops=len(crops),
        rejected_bad_input=sum(r.kind == "bad_input" for r in rejected),
        rejected_excluded=sum(r.kind != "bad_input" for r in rejected),
        rejected_reasons=dict(sorted(counts.items())),
        boundary_pairs=int(reg["at_search_boundary"].sum()),
        table1=table.to_dict("records"),
    )



def parse(body: Any) -> IngestConfig:
    """The ingest settings of a pipeline stage or of `vdes-tune ingest` (IngestConfig fields)."""
    return from_dict(IngestConfig, mapping(body))


def _run_stage(cfg: IngestConfig, ctx: Context) -> dict[str, Any]:
    if ctx.data is None:
        raise BadInputError("ingest needs the raw dataset (--data)")
    return run(cfg, ctx.workspace, ctx.data, ctx.force, ctx.address, ctx.num_cpus, ctx.verify).to_dict()


STAGE = Stage("ingest", "dataset/: registered pairs, crops, splits, Parquet shards, QA", parse, _run_stage)
