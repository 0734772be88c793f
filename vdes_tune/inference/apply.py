"""`generators apply`: a trained generator over LE files and folders, with outputs, provenance and skips.

Outputs mirror the inputs under `out`: a file named on the command line lands at `out/<name>.png`, a file
found in a folder at `out/<path inside that folder>.png` (plus `.dcm` for a DICOM input). One
`out/provenance.json` records every run into that folder: generator, settings, and per output its input,
their hashes and timing; a run that rewrites an output (`overwrite`) takes that output's record over, so
each file in the folder is described once.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vdes_tune import __version__
from vdes_tune.errors import BadInputError, UnreadableImage
from vdes_tune.inference.generator import TrainedGenerator, load_generator
from vdes_tune.inference.images import (UNSUPPORTED, atomic_write, derived_dicom, png_bytes, quantise,
                                        read_input, sniff)
from vdes_tune.inference.tiling import Tiling, default_tiling, infer_tiled
from vdes_tune.workspace import Workspace, write_json

PROVENANCE = "provenance.json"
# Extensions an output name drops; any other name keeps its full name (DICOM files are often named by UID).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".dcm", ".dicom"}
INTENSITY = ("8-bit gray as ingest reads it (colour to gray, 16-bit PNG >> 8, DICOM windowed to 8 bits by "
             "vdes_tune.data.dicom.to_uint8), divided by 255; output clamped to [0, 1] and written as "
             "round(v * 255) (8-bit) or round(v * 65535) (16-bit)")


@dataclass
class Job:
    """One input file and the output names it will get (relative to `out`, without suffix)."""

    source: Path
    stem: Path
    dicom: bool

    @property
    def outputs(self) -> list[Path]:
        """Output files relative to `out`."""
        names = [self.stem.with_name(self.stem.name + ".png")]
        if self.dicom:
            names.append(self.stem.with_name(self.stem.name + ".dcm"))
        return names


@dataclass
class ApplySummary:
    """What an apply run did."""

    out: str
    written: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    provenance: str = ""
    tile: int = 0
    overlap: int = 0
    whole_up_to: int = 0
    device: str = "cpu"
    seconds: float = 0.0


def resolve_tiling(gen: TrainedGenerator, tile: int | None, overlap: int | None, batch_size: int = 4) -> Tiling:
    """The tiling of a run: the given sizes (tile rounded up to the network's multiple) or the defaults.

    By default a network without per-image statistics runs an image whole when it needs no more memory than
    one batch of tiles (exact, and cheaper than overlapping tiles); a per-image-norm one is always tiled.
    """
    m = gen.multiple
    default_tile, _ = default_tiling(gen.per_image_norm, gen.crop_size)
    whole_up_to = 0 if tile is not None or gen.per_image_norm else batch_size * default_tile ** 2
    tile = default_tile if tile is None else tile
    if tile < 0:
        raise BadInputError(f"--tile must be >= 0 (0: the whole image in one pass), got {tile}")
    tile = -(-tile // m) * m
    overlap = (tile // 4 if overlap is None else overlap) if tile else 0
    if overlap < 0 or 2 * overlap > tile or (tile and tile - -(-overlap // m) * m < m):
        raise BadInputError(f"--overlap must be 0..{tile // 2} for {tile}-px tiles (multiple of {m}), "
                            f"got {overlap}")
    return Tiling(tile, overlap, m, whole_up_to)


def _stem(relative: Path) -> Path:
    return relative.with_suffix("") if relative.suffix.lower() in IMAGE_SUFFIXES else relative


def plan_jobs(inputs: list[Path], out: Path) -> tuple[list[Job], list[dict[str, str]]]:
    """(jobs, skipped) for files and folders (walked in sorted order; hidden entries and `out` left out)."""
    jobs: list[Job] = []
    skipped: list[dict[str, str]] = []
    claimed: dict[Path, Path] = {}
    out = out.resolve()
    for given in inputs:
        root = given.resolve()
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root)
                           and out not in p.parents)
            pairs = [(p, p.relative_to(root)) for p in files]
        elif root.is_file():
            pairs = [(root, Path(root.name))]
        else:
            skipped.append({"input": str(given), "reason": "no such file or folder"})
            continue
        for path, relative in pairs:
            try:
                with open(path, "rb") as f:
                    kind = sniff(f.read(132))
            except OSError as exc:
                skipped.append({"input": str(path), "reason": f"cannot read file: {exc.strerror or exc}"})
                continue
            if kind is None:
                skipped.append({"input": str(path), "reason": UNSUPPORTED})
                continue
            job = Job(path, _stem(relative), kind == "dicom")
            clash = next((claimed[o] for o in job.outputs if o in claimed), None)
            if clash is not None:
                skipped.append({"input": str(path), "reason": f"its output name is taken by {clash}"})
                continue
            claimed.update({o: path for o in job.outputs})
            jobs.append(job)
    return jobs, skipped


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _previous_runs(out: Path, overwrite: bool) -> list[dict[str, Any]]:
    path = out / PROVENANCE
    if not path.exists():
        return []
    try:
        runs = json.loads(path.read_text()).get("runs")
    except (OSError, ValueError, AttributeError):
        runs = None
    if isinstance(runs, list):
        return runs
    if overwrite:
        return []
    raise BadInputError(f"{path}: not a provenance file of `generators apply`; move it away or pass "
                        "--overwrite to replace it")


def _runner(gen: TrainedGenerator, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network as a batch -> batch function on `device` (bf16 autocast on CUDA, like training)."""
    from vdes_tune.training.engine import prepare_device, to_device
    from vdes_tune.training.tasks import autocast_for

    prepare_device(device, gen.network)

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast_for(device):
            return gen.network(to_device(batch, device)).float()
    return run


def apply_generator(workspace: Workspace, name: str, inputs: list[Path], out: Path, tile: int | None = None,
                    overlap: int | None = None, device: str = "auto", batch_size: int = 4,
                    overwrite: bool = False, progress: bool = True) -> ApplySummary:
    """Run generators/<name> over `inputs` into `out`; skips bad inputs, refuses to overwrite unless asked."""
    from tqdm import tqdm

    from vdes_tune.inference.model_card import ensure_model_card
    from vdes_tune.training.classify import pick_device

    if device not in ("auto", "cpu", "cuda"):
        raise BadInputError(f"--device must be auto, cpu or cuda (got {device!r})")
    if batch_size < 1:
        raise BadInputError(f"--batch-size must be >= 1 (got {batch_size})")
    gen = load_generator(workspace, name)
    tiling = resolve_tiling(gen, tile, overlap, batch_size)
    target = pick_device(device)
    out = out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a folder")
    jobs, skipped = plan_jobs(inputs, out)
    if not jobs and not skipped:
        raise BadInputError(f"no files found in {', '.join(str(p) for p in inputs)}")
    existing = [o for job in jobs for o in job.outputs if (out / o).exists()]
    if existing and not overwrite:
        raise BadInputError(f"{len(existing)} output(s) exist already in {out} (first: {existing[0]}); "
                            "pass --overwrite to replace them or choose another --out")
    previous = _previous_runs(out, overwrite)
    ensure_model_card(workspace, name, gen.manifest)

    run = {
        "vdes_tune_version": __version__, "torch_version": torch.__version__,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "generator": gen.describe(),
        "settings": {"tile": tiling.tile, "overlap": tiling.overlap, "multiple": tiling.multiple,
                     "whole_image_up_to_px": tiling.whole_up_to, "batch_size": batch_size, "device": str(target),
                     "precision": "bfloat16 autocast" if target.type == "cuda" else "float32"},
        "intensity": INTENSITY, "outputs": [], "skipped": [],
    }
    for s in skipped:
        _skip(run, s["input"], s["reason"])
    entropy = [gen.weights_sha256, gen.config_hash, f"tile={tiling.tile}", f"overlap={tiling.overlap}",
               f"device={target.type}"]
    model = _runner(gen, target)
    start = time.perf_counter()
    try:
        for job in tqdm(jobs, desc=f"apply {name}", unit="image", file=sys.stderr, disable=not progress):
            record = _apply_one(job, out, gen, model, tiling, batch_size, entropy)
            if "reason" in record:
                _skip(run, record["input"], record["reason"])
            else:
                run["outputs"].append(record)
    finally:  # what was written is recorded even when a later image fails
        run["seconds"] = round(time.perf_counter() - start, 3)
        if run["outputs"] or run["skipped"]:
            _write_provenance(out, previous, run)
    if not run["outputs"]:
        raise BadInputError(f"nothing written: all {len(run['skipped'])} input(s) skipped; "
                            f"see {out / PROVENANCE}")
    return ApplySummary(str(out), len(run["outputs"]), run["skipped"], str(out / PROVENANCE), tiling.tile,
                        tiling.overlap, tiling.whole_up_to, str(target), run["seconds"])


def _skip(run: dict[str, Any], source: str, reason: str) -> None:
    from tqdm import tqdm

    run["skipped"].append({"input": source, "reason": reason})
    tqdm.write(f"skipped {source}: {reason}", file=sys.stderr)


def _apply_one(job: Job, out: Path, gen: TrainedGenerator, model: Callable[[torch.Tensor], torch.Tensor],
               tiling: Tiling, batch_size: int, entropy: list[str]) -> dict[str, Any]:
    """Read, infer and write one input; its provenance record, or {input, reason} when it is skipped."""
    start = time.perf_counter()
    try:
        image = read_input(job.source)
    except UnreadableImage as exc:
        return {"input": str(job.source), "reason": exc.reason}
    h, w = image.pixels.shape
    if min(h, w) < 2 * tiling.multiple:  # too little left after the network's downsampling to pad or normalise
        return {"input": str(job.source),
                "reason": f"too small ({w}x{h} px; the generator needs at least {2 * tiling.multiple} px a side)"}
    vdes, tiles = infer_tiled(model, image.pixels.astype(np.float32) / 255.0, tiling, batch_size)
    bits = 16 if image.wide_output else 8
    pixels = quantise(vdes, bits)
    files = [(job.outputs[0], png_bytes(pixels, job.outputs[0]), f"png{bits}")]
    if image.format == "dicom":
        desc = (f"virtual DES from the LE image by vdes-tune {__version__} generator '{gen.name}' "
                f"({gen.cfg.model}), weights sha256 {gen.weights_sha256}, tile {tiling.tile} overlap "
                f"{tiling.overlap}")
        files.append((job.outputs[1], derived_dicom(image, pixels, desc, f"virtual DES (vdes-tune {gen.name})",
                                                    entropy), "dicom"))
    for relative, data, _ in files:
        atomic_write(out / relative, data)
    return {
        "input": str(job.source), "input_sha256": image.sha256, "input_format": image.format,
        "input_bits": image.bits, "height": int(h), "width": int(w),
        "outputs": [{"path": relative.as_posix(), "format": kind, "sha256": hashlib.sha256(data).hexdigest()}
                    for relative, data, kind in files],
        "tiles": tiles, "seconds": round(time.perf_counter() - start, 3),
    }


def _write_provenance(out: Path, previous: list[dict[str, Any]], run: dict[str, Any]) -> None:
    """Add `run` to out/provenance.json; records of earlier runs for outputs it rewrote are dropped."""
    rewritten = {o["path"] for rec in run["outputs"] for o in rec["outputs"]}
    runs = []
    for old in previous:
        kept = [r for r in old.get("outputs", []) if not rewritten & {o["path"] for o in r["outputs"]}]
        if kept:
            runs.append({**old, "outputs": kept})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PROVENANCE, {"schema_version": 1, "tool": "vdes-tune generators apply",
                                  "runs": [*runs, run]})
