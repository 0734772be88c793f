"""Per-pair work of ingest, free of Ray: decode, register, place crops, cut LE/LED/DES, QA overlay."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vdes_tune.config import IngestConfig
from vdes_tune.data import qa
from vdes_tune.data.crops import Box, breast_mask, lesion_crops, random_tissue_crops, region_mask, stable_seed
from vdes_tune.data.denoise import denoise_crop
from vdes_tune.data.dicom import decode_uint8
from vdes_tune.data.registration import Registration, apply_shift, overlap, register
from vdes_tune.errors import UnreadableImage
from vdes_tune.remote import filesystem, is_uri


def read_gray(path: str | Path) -> np.ndarray:
    """Decode a JPEG (gray or colour) or a DICOM file to a 2-D uint8 array; UnreadableImage names the file."""
    try:
        if is_uri(path):  # a raw dataset in shared storage: workers read it there, not from the driver's disk
            fs, inner = filesystem(path)
            with fs.open_input_stream(inner) as f:
                data = np.frombuffer(f.read(), dtype=np.uint8)
        else:
            data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise UnreadableImage(path, f"cannot read file: {exc}") from exc
    if data.size >= 132 and data[128:132].tobytes() == b"DICM":  # a DICOM Part-10 file, whatever its name
        return decode_uint8(data.tobytes(), path)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise UnreadableImage(path, "not a decodable image (corrupt or truncated JPEG)")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise UnreadableImage(path, f"unsupported pixel type {image.dtype}")
    return image


@dataclass
class PairResult:
    """What one pair contributes: registration record, crops with pixels, notes, optional overlay."""

    pair_id: str
    registration: dict[str, Any] = field(default_factory=dict)
    crops: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    error_file: str = ""
    error_kind: str = "bad_input"  # "excluded" when the input is sound but the crop rules cannot use it
    notes: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) of skipped regions
    overlay_png: bytes = b""


def _registration_record(pair_id: str, reg: Registration, le: np.ndarray, des: np.ndarray,
                         seconds: float) -> dict[str, Any]:
    return {
        "pair_id": pair_id, "tx": reg.tx, "ty": reg.ty, "mi": reg.mi, "mi_at_zero": reg.mi_at_zero,
        "at_search_boundary": reg.at_search_boundary, "evaluations": reg.evaluations,
        "le_height": le.shape[0], "le_width": le.shape[1], "des_height": des.shape[0], "des_width": des.shape[1],
        "seconds": seconds,
    }


def process_pair(row: dict[str, Any], cfg: IngestConfig, want_overlay: bool = False) -> PairResult:
    """Run one catalog row through registration, crop placement and LED."""
    pair_id = row["pair_id"]
    result = PairResult(pair_id)
    images = []
    for path_key, file_key in (("le_path", "le_file"), ("des_path", "des_file")):
        try:
            images.append(read_gray(row[path_key]))
        except UnreadableImage as exc:
            result.error, result.error_file = exc.reason, row[file_key]
            return result
    le, des = images
    start = time.perf_counter()
    try:
        reg = register(le, des, cfg.registration, cfg.max_shift, cfg.coarse_step, cfg.refine_radius, cfg.mi_bins)
    except ValueError as exc:
        result.error, result.error_file = f"registration failed: {exc}", row["des_file"]
        return result
    result.registration = _registration_record(pair_id, reg, le, des, time.perf_counter() - start)

    ly, lx, _, _ = overlap(le.shape, des.shape, reg.tx, reg.ty)
    bounds = Box(lx.start, ly.start, lx.stop, ly.stop)
    size = cfg.crop_size
    if bounds.width < size or bounds.height < size:
        result.error = (f"LE/registered-DES overlap {bounds.width}x{bounds.height} px is smaller than the "
                        f"{size}x{size} crop")
        result.error_file = row["le_file"]
        return result
    registered, _ = apply_shift(le.shape, des, reg.tx, reg.ty)
    mask = breast_mask(le)
    if row["pathology"] == "Normal":
        specs = random_tissue_crops(mask, size, bounds, cfg.normal_crops_per_image, cfg.min_tissue_fraction,
                                    stable_seed(cfg.seed, pair_id))
        if not specs:
            result.error = f"no {size}x{size} window with >= {cfg.min_tissue_fraction:.0%} breast tissue"
            result.error_file, result.error_kind = row["le_file"], "excluded"
    else:
        specs = []
        candidates = lesion_crops(json.loads(row["le_regions"]), json.loads(row["des_regions"]), reg.tx, reg.ty,
                                  size, bounds, cfg.merge_distance, mask)
        for spec in candidates:
            inside = spec.x0 <= spec.cx < spec.x0 + size and spec.y0 <= spec.cy < spec.y0 + size
            if inside:
                specs.append(spec)
            else:
                result.notes.append((f"segmentations line {spec.region_line}",
                                     f"lesion centre ({spec.cx:.0f}, {spec.cy:.0f}) lies outside the LE/DES overlap"))
        if not specs:
            result.error = "no lesion region inside the LE/registered-DES overlap"
            result.error_file, result.error_kind = row["le_file"], "excluded"
    lesions = _lesion_mask(row, le.shape, reg.tx, reg.ty) if row["pathology"] != "Normal" else None
    for k, spec in enumerate(specs):
        ys, xs = slice(spec.y0, spec.y0 + size), slice(spec.x0, spec.x0 + size)
        lesion = lesions[ys, xs] if lesions is not None else np.zeros((size, size), np.uint8)
        led = denoise_crop(le, spec.x0, spec.y0, size, cfg.nlm_h, cfg.nlm_template, cfg.nlm_search)
        result.crops.append({
            "crop_id": f"{pair_id}_c{k}", "pair_id": pair_id, "patient_id": int(row["patient_id"]),
            "label": int(row["label"]), "pathology": row["pathology"], "source": spec.source,
            "region_line": spec.region_line, "centre_x": float(spec.cx), "centre_y": float(spec.cy),
            "origin_x": spec.x0, "origin_y": spec.y0, "tissue_fraction": spec.tissue_fraction,
            "height": size, "width": size, "lesion_fraction": float(lesion.mean()),
            "le": np.ascontiguousarray(le[ys, xs]).tobytes(),
            "led": np.ascontiguousarray(led).tobytes(),
            "des": np.ascontiguousarray(registered[ys, xs]).tobytes(),
            "lesion": np.ascontiguousarray(lesion).tobytes(),
        })
    if want_overlay or reg.at_search_boundary:
        result.overlay_png = qa.overlay_png(le, registered, [(s.x0, s.y0) for s in specs], size,
                                            title=f"{pair_id} tx={reg.tx} ty={reg.ty}")
    return result


def _lesion_mask(row: dict[str, Any], shape: tuple[int, int], tx: int, ty: int) -> np.ndarray:
    """Every annotated region of the pair on the LE frame (DES drawings moved by the registration), 0/1 uint8:
    what the lesion-aware image quality of the virtual DES is measured inside."""
    mask = np.zeros(shape, np.uint8)
    for key, dx, dy in (("le_regions", 0, 0), ("des_regions", tx, ty)):
        for region in json.loads(row[key]):
            try:
                mask |= region_mask(region, shape, dx, dy).astype(np.uint8)
            except (KeyError, TypeError, ValueError):
                continue  # a malformed drawing was already reported by the reader; it only loses its pixels here
    return mask


def decode_image(blob: bytes, height: int, width: int) -> np.ndarray:
    """A shard's image bytes back to a (height, width) uint8 array."""
    return np.frombuffer(blob, dtype=np.uint8).reshape(height, width)
