"""Synthetic CDD-CESM phantom writer: LE/DES JPEG pairs, annotation xlsx, VIA CSV and a truth sidecar; or, with
format "dicom", the same pairs as CESM DICOM files (GE SenoBright tags) plus labels.csv.

Shift convention: LE pixel (x, y) shows the same anatomy as DES pixel (x - tx, y - ty), i.e. the
registered DES is R[y, x] = DES[y - ty, x - tx]. Both images are cut from one world canvas per
modality, the LE at world offset (ox, oy) and the DES at (ox + tx, oy + ty).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pydicom
from openpyxl import Workbook
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from vdes_tune.config import SynthConfig
from vdes_tune.phantom import draw, signal
from vdes_tune.phantom.signal import Lesion
from vdes_tune.data.cdd_cesm import ANNOTATION_COLUMNS, DES_DIR, LE_DIR
from vdes_tune.data.dicom import LABEL_COLUMNS, LABELS_NAME, LE, MG_FOR_PRESENTATION, RECOMBINED
from vdes_tune.errors import BadInputError

XLSX_NAME = "Radiology-manual-annotations.xlsx"
VIA_NAME = "Radiology_hand_drawn_segmentations_v2.csv"
TRUTH_NAME = "synthetic_truth.csv"
XLSX_COLUMNS = ANNOTATION_COLUMNS  # the writer emits exactly what the reader documents
VIA_HEADER = "#filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes"
TRUTH_COLUMNS = ("pair_id", "patient_id", "side", "view", "le_file", "des_file", "tx", "ty", "le_height",
                 "le_width", "des_height", "des_width", "pathology", "birads", "lesion_index", "lesion_kind",
                 "malignant", "cx", "cy", "radius", "le_contrast", "des_enhancement", "annotated_on",
                 "region_shape", "suspicion", "look", "margin_blur", "irregularity", "spicules", "calc_count",
                 "calc_linear", "des_predicted", "pattern", "signal")
NOMINAL = {"small": (512, 320), "full": (2355, 1315)}  # (H, W)
MAX_SHIFT = 10
WORLD_MARGIN = MAX_SHIFT + 2
FIXED_ZIP_TIME = (2022, 1, 1, 0, 0, 0)
FIXED_CORE_TIME = "2022-01-01T00:00:00Z"
QUIRK_RATE = 0.05
# (DM finding, CESM finding) per lesion kind, after the wording of the real sheet.
FINDINGS = {"mass": ("mass", "mass enhancement"), "calcification": ("calcifications", "calcifications"),
            "non_mass": ("asymmetry", "non-mass enhancement")}


@dataclass(frozen=True)
class SynthSummary:
    """What write_dataset wrote; `lesions` counts lesion appearances, one per (pair, lesion)."""

    patients: int
    pairs: int
    images: int
    lesions: int
    out: Path


@dataclass
class _Finding:
    lesion: Lesion
    birads: int
    annotated_on: str  # DM | CM | both


@dataclass
class _Pair:
    pid: int
    side: str
    view: str
    index: int  # pair index within the patient: seeds the pair's own RNG
    pathology: str
    findings: list[_Finding]
    suffix: str = ""  # quirk: MLO2 / MLO_2
    spaced: str = ""  # quirk: "DM" or "CM" image gets a space before .jpg
    trailing: str = ""  # quirk: "DM" or "CM" xlsx row gets a trailing space

    @property
    def pair_id(self) -> str:
        return f"P{self.pid}_{self.side}_{self.view}{self.suffix}"

    def stem(self, mod: str) -> str:
        return f"P{self.pid}_{self.side}_{mod}_{self.view}{self.suffix}"

    def file(self, mod: str) -> str:
        return self.stem(mod) + (" .jpg" if self.spaced == mod else ".jpg")


@dataclass
class _Patient:
    pid: int
    age: int
    machine: int
    density: str
    pairs: list[_Pair] = field(default_factory=list)


def _scale(cfg: SynthConfig) -> float:
    return NOMINAL[cfg.size][0] / NOMINAL["small"][0]


def _annotated_on(rng: np.random.Generator, kind: str) -> str:
    # Non-mass enhancement is seen on the subtracted image only, so it is usually drawn there only.
    return "CM" if rng.random() < (0.75 if kind == "non_mass" else 0.05) else "both"


def _plan_breast(rng: np.random.Generator, sig: signal.Signal, scale: float) -> tuple[str, list[_Finding]]:
    pathology, lesions = signal.plan_breast(rng, sig, scale)
    return pathology, [_Finding(les, birads, _annotated_on(rng, les.kind)) for les, birads in lesions]


def _plan_patient(cfg: SynthConfig, pid: int) -> _Patient:
    """Everything about a patient except pixels; depends only on (seed, pid)."""
    rng = np.random.default_rng([cfg.seed, pid])
    pat = _Patient(pid=pid, age=int(rng.integers(28, 81)), machine=int(rng.integers(1, 3)),
                   density=str(rng.choice(list("ABCD"), p=[0.1, 0.4, 0.4, 0.1])))
    sides = ["L", "R"] if rng.random() < 0.65 else [str(rng.choice(["L", "R"]))]
    for side in sides:
        views = ["CC", "MLO"]
        if rng.random() < 0.06:
            views.remove(str(rng.choice(views)))
        pathology, findings = _plan_breast(rng, signal.preset(cfg.signal), _scale(cfg))
        for view in views:
            pat.pairs.append(_Pair(pid, side, view, len(pat.pairs), pathology, findings))
    return pat


def _assign_quirks(cfg: SynthConfig, pairs: list[_Pair]) -> None:
    """Mark ~5% of pairs with each naming quirk, and at least one of each where possible."""
    for p in pairs:
        u = np.random.default_rng([cfg.seed, p.pid, p.index, 77]).random(5)
        if u[0] < QUIRK_RATE:
            p.spaced = "DM" if u[3] < 0.5 else "CM"
        if u[1] < QUIRK_RATE:
            p.trailing = "DM" if u[4] < 0.5 else "CM"
        if u[2] < QUIRK_RATE and p.view == "MLO":
            p.suffix = "2" if u[3] < 0.5 else "_2"
    # Small datasets would often miss a quirk entirely; force one of each onto quirk-free pairs.
    clean = [p for p in pairs if not (p.spaced or p.trailing or p.suffix)]
    if not any(p.suffix == "2" for p in pairs) or not any(p.suffix == "_2" for p in pairs):
        for want in ("2", "_2"):
            if any(p.suffix == want for p in pairs):
                continue
            mlo = [p for p in clean if p.view == "MLO"]
            if mlo:
                mlo[0].suffix = want
                clean.remove(mlo[0])
    if not any(p.spaced for p in pairs) and clean:
        clean.pop(0).spaced = "DM"
    if not any(p.trailing for p in pairs) and clean:
        clean.pop(0).trailing = "CM"


def _place(rng: np.random.Generator, bv: draw.BreastView, les: Lesion, dims: tuple[int, int, int, int],
           shift: tuple[int, int], taken: list[tuple[float, float, float]]) -> tuple[float, float]:
    """A lesion centre (LE pixel coords) inside the breast and >= 0.2*min(H, W) from every LE and DES edge."""
    le_h, le_w, des_h, des_w = dims
    tx, ty = shift
    m = 0.2 * max(min(le_h, le_w), min(des_h, des_w))
    x_lo, x_hi = max(m, m + tx), min(le_w - m, des_w - m + tx)
    y_lo, y_hi = max(m, m + ty), min(le_h - m, des_h - m + ty)
    best, best_rho = ((x_lo + x_hi) / 2, (y_lo + y_hi) / 2), math.inf
    for _ in range(300):
        cx, cy = float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi))
        wx, wy = cx + WORLD_MARGIN, cy + WORLD_MARGIN
        apart = all(math.hypot(cx - x, cy - y) > 1.2 * (les.radius + r) for x, y, r in taken)
        if apart and draw.lesion_fits(bv, wx, wy, les.radius):
            return cx, cy
        rho = float(bv.rho(np.float32(wx), np.float32(wy)))
        if apart and rho < best_rho:
            best, best_rho = (cx, cy), rho
    return best


def _render_pair(cfg: SynthConfig, pair: _Pair, tissue: draw.Tissue) -> dict:
    """Pixels, shift and lesion placements of one LE/DES pair; depends only on (seed, pid, pair index)."""
    rng = np.random.default_rng([cfg.seed, pair.pid, pair.index + 1])
    nh, nw = NOMINAL[cfg.size]
    scale = _scale(cfg)
    le_h, le_w = int(round(nh * rng.uniform(0.95, 1.05))), int(round(nw * rng.uniform(0.95, 1.05)))
    # Fields of view differ: the DES is often taller (paper example 2129 vs 2341 rows) and a few px narrower/wider.
    des_h = le_h + int(rng.integers(-8, int(0.1 * le_h) + 1))
    des_w = le_w + int(rng.integers(-8, 9))
    tx, ty = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, 2))
    o = WORLD_MARGIN
    world = (o + max(le_h, ty + des_h) + 2, o + max(le_w, tx + des_w) + 2)
    bv = draw.sample_view(rng, pair.side, pair.view, le_h, le_w, o, o, scale)
    taken: list[tuple[float, float, float]] = []
    placed = []
    for f in pair.findings:
        cx, cy = _place(rng, bv, f.lesion, (le_h, le_w, des_h, des_w), (tx, ty), taken)
        taken.append((cx, cy, f.lesion.radius))
        placed.append((f.lesion, cx + o, cy + o))
    le_w_img, des_w_img = draw.render_world(rng, bv, tissue, world, placed)
    # Same world point: LE pixel x = wx - o, DES pixel u = wx - (o + tx), so x - u = tx.
    le = draw.finish(rng, le_w_img[o:o + le_h, o:o + le_w], 0.35)
    des = draw.finish(rng, des_w_img[o + ty:o + ty + des_h, o + tx:o + tx + des_w], 0.55)
    jpg = {}
    # The quality draws come after every pixel draw, so DICOM (which skips them) gets the same pixels.
    for mod, img in (("DM", le), ("CM", des)) if cfg.format == "jpeg" else ():
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(85, 96))])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {pair.file(mod)}")
        jpg[mod] = buf.tobytes()
    return {"jpg": jpg, "pixels": {"DM": le, "CM": des}, "tx": tx, "ty": ty, "dims": (le_h, le_w, des_h, des_w),
            "centres": [(cx - o, cy - o) for _, cx, cy in placed]}


def _birads(pair: _Pair) -> int | str:
    if not pair.findings:
        return 1
    vals = [f.birads for f in pair.findings]
    return vals[0] if len(vals) == 1 else "$".join(str(v) for v in vals)


def _findings_text(pair: _Pair, mod: str) -> str:
    if not pair.findings:
        return "normal"
    return "$".join(FINDINGS[f.lesion.kind][0 if mod == "DM" else 1] for f in pair.findings)


def _tags(pair: _Pair) -> str:
    words = [signal.descriptors(f.lesion)["tag"] for f in pair.findings]
    return "$".join(words) if words else "normal"


def _xlsx_bytes(patients: list[_Patient]) -> bytes:
    """The annotation workbook, re-packed so that the same content gives the same bytes."""
    wb = Workbook()
    mass = wb.active
    mass.title = "mass_description"  # first, so readers must pick sheet `all` by name
    mass.append(["Image_name", "Patient_ID", "Side", "Type", "Mass shape", "Mass margin", "Mass density"])
    sheet = wb.create_sheet("all")
    sheet.append(list(XLSX_COLUMNS))
    for pat in patients:
        for p in pat.pairs:
            for mod, typ in (("DM", "DM"), ("CM", "CESM")):
                name = p.stem(mod) + (" " if p.trailing == mod else "")
                sheet.append([name, pat.pid, p.side, typ, pat.age, pat.density if mod == "DM" else "_",
                              _birads(p), _findings_text(p, mod), p.view, _tags(p), pat.machine, p.pathology])
                for f in p.findings:
                    if f.lesion.kind == "mass" and mod == "DM":
                        words = signal.descriptors(f.lesion)
                        mass.append([name, pat.pid, p.side, typ, words["shape"], words["margin"], words["density"]])
    wb.properties.creator = "vdes-tune synth"
    raw = io.BytesIO()
    wb.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = data.decode("utf-8")
                text = re.sub(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)",
                              lambda mt: mt.group(1) + FIXED_CORE_TIME + mt.group(3), text)
                data = text.encode("utf-8")
            zi = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zout.writestr(zi, data)
    return out.getvalue()


def _via_row(fname: str, size: int, count: int, rid: int, shape: dict) -> str:
    blob = json.dumps(shape, separators=(",", ":")).replace('"', '""')
    return f'{fname},{size},"{{}}",{count},{rid},"{blob}","{{}}"'


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInputError(f"{out}: output path exists and is not an empty folder; choose a new path")


def write_dataset(cfg: SynthConfig, out: Path, progress: Callable[[int], None] | None = None) -> SynthSummary:
    """Write a synthetic dataset in the CDD-CESM layout to `out` (atomically) and return what was written."""
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        summary = _write(cfg, tmp, progress)
        _check_out(out)  # another writer may have filled it meanwhile
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(summary.patients, summary.pairs, summary.images, summary.lesions, out)


def _write(cfg: SynthConfig, root: Path, progress: Callable[[int], None] | None) -> SynthSummary:
    as_dicom = cfg.format == "dicom"
    if as_dicom:
        root.mkdir(parents=True)
    else:
        (root / LE_DIR).mkdir(parents=True)
        (root / DES_DIR).mkdir()
    patients = [_plan_patient(cfg, pid) for pid in range(1, cfg.patients + 1)]
    pairs = [p for pat in patients for p in pat.pairs]
    if cfg.quirks:
        _assign_quirks(cfg, pairs)
    via: list[str] = [VIA_HEADER]
    labels: list[list] = []
    truth: list[list] = []
    lesion_rows = 0
    for pat in patients:
        tissue = draw.sample_tissue(np.random.default_rng([cfg.seed, pat.pid, 0, 1]), pat.density)
        for p in pat.pairs:
            r = _render_pair(cfg, p, tissue)
            if as_dicom:
                files = _write_dicom_pair(cfg, root, pat, p, r["pixels"])
            else:
                files = (p.file("DM"), p.file("CM"))
                for mod, folder in (("DM", LE_DIR), ("CM", DES_DIR)):
                    (root / folder / p.file(mod)).write_bytes(r["jpg"][mod])
            tx, ty = r["tx"], r["ty"]
            le_h, le_w, des_h, des_w = r["dims"]
            base = [p.pair_id, pat.pid, p.side, p.view, *files, tx, ty, le_h, le_w, des_h, des_w, p.pathology,
                    _birads(p)]
            # Regions get their own RNG so annotation choices never disturb the pixels.
            srng = np.random.default_rng([cfg.seed, p.pid, p.index + 1, 2])
            regions: dict[str, list[dict]] = {"DM": [], "CM": []}
            for i, (f, (cx, cy)) in enumerate(zip(p.findings, r["centres"])):
                shape = str(srng.choice(draw.REGION_SHAPES, p=[0.64, 0.2, 0.1, 0.03, 0.03]))
                if f.annotated_on == "both":
                    regions["DM"].append(draw.region(srng, f.lesion, cx, cy, shape, _scale(cfg)))
                regions["CM"].append(draw.region(srng, f.lesion, cx - tx, cy - ty, shape, _scale(cfg)))
                les = f.lesion
                truth.append(base + [i, les.kind, int(les.malignant), round(cx, 2), round(cy, 2),
                                     round(les.radius, 2), round(les.le_contrast, 2), round(les.des_enhancement, 2),
                                     f.annotated_on, shape, round(les.suspicion, 4), round(les.look, 4),
                                     round(les.margin_blur, 4), round(les.irregularity, 4), les.spicules,
                                     les.calc_count, round(les.calc_linear, 4), round(les.des_predicted, 2),
                                     les.pattern if les.kind != "calcification" else "", cfg.signal])
                lesion_rows += 1
            if not p.findings:
                truth.append(base + [""] * (len(TRUTH_COLUMNS) - len(base) - 1) + [cfg.signal])
            if as_dicom:
                labels.append([pat.pid, p.side, p.view, p.pathology, _birads(p), "",
                               *(json.dumps(regions[mod], separators=(",", ":")) for mod in ("DM", "CM"))])
            else:
                for mod in ("DM", "CM"):
                    size = len(r["jpg"][mod])
                    for rid, shp in enumerate(regions[mod]):
                        via.append(_via_row(p.file(mod), size, len(regions[mod]), rid, shp))
            if progress is not None:
                progress(1)
    if as_dicom:
        with open(root / LABELS_NAME, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(LABEL_COLUMNS)
            w.writerows(labels)
    else:
        (root / XLSX_NAME).write_bytes(_xlsx_bytes(patients))
        (root / VIA_NAME).write_text("\n".join(via) + "\n", encoding="utf-8")
    with open(root / TRUTH_NAME, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(TRUTH_COLUMNS)
        w.writerows(truth)
    return SynthSummary(len(patients), len(pairs), 2 * len(pairs), lesion_rows, root)


# ---- DICOM ---------------------------------------------------------------------------------------------------------

# The DICOM phantom follows the GE SenoBright convention, the best-evidenced one (docs/ingest.md, "DICOM input").
GE_IMAGE_TYPE = {LE: ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"], RECOMBINED: ["DERIVED", "PRIMARY", "", "RECOMBINED"]}
GE_PROCESSING_CODE = {LE: "GEMS_FFDM_PV", RECOMBINED: "GEMS_CESM_1"}
LE_KVP = 29  # within the low-energy range of SenoBright (about 26-31 kVp)
STUDY_DATE = "20220101"
VIEW_SCT = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
# Patient Orientation (row and column directions) of the phantom: chest wall at the left edge for L, the right for R.
ORIENTATION = {("L", "CC"): ["A", "R"], ("R", "CC"): ["P", "L"], ("L", "MLO"): ["A", "FR"], ("R", "MLO"): ["P", "FL"]}


def from_uint8(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """12-bit stored values and the LINEAR VOI window (center, width) under which dicom.to_uint8 gives back `image`."""
    # v -> 16 v; LINEAR with centre 2040.5 and width 4081 maps x to x * 255 / 4080, which is v again.
    return image.astype(np.uint16) << 4, 2040.5, 4081.0


def _uid(cfg: SynthConfig, *parts: object) -> str:
    """A UID that depends only on the seed and `parts` (a name-based UUID under the 2.25 root), so the same seed
    writes the same bytes."""
    name = "/".join(["vdes-tune synth", str(cfg.seed), *map(str, parts)])
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


def cesm_dataset(image: np.ndarray, kind: str, *, patient_id: str, age: int, side: str, view: str, study_uid: str,
                 series_uid: str, sop_uid: str, series_number: int, instance_number: int,
                 source_uid: str = "") -> pydicom.Dataset:
    """A Digital Mammography For Presentation dataset (Part-10 file meta, GE SenoBright tags) of an 8-bit LE or
    recombined image, stored as 12 bits with a VOI window."""
    stored, center, width = from_uint8(image)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = GE_IMAGE_TYPE[kind]
    ds.SOPClassUID, ds.SOPInstanceUID = MG_FOR_PRESENTATION, sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime, ds.ContentTime = "090000", f"09{instance_number // 60 % 60:02d}{instance_number % 60:02d}"
    ds.AccessionNumber = f"SYN{patient_id}"
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.ManufacturerModelName = "Senographe Pristina (vdes-tune synthetic phantom)"
    ds.SeriesDescription = "CESM low energy" if kind == LE else "CESM recombined"
    ds.PatientName = f"SYNTH^P{patient_id}"
    ds.PatientID = patient_id
    ds.PatientSex = "F"
    ds.PatientAge = f"{age:03d}Y"
    ds.BodyPartExamined = "BREAST"
    ds.ContrastBolusAgent = "IODINATED CONTRAST"
    if kind == LE:
        ds.KVP = str(LE_KVP)
    ds.AcquisitionDeviceProcessingCode = GE_PROCESSING_CODE[kind]
    ds.ViewPosition = view
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", series_number, instance_number
    ds.PatientOrientation = ORIENTATION[(side, view)]
    ds.ImageLaterality = side
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = VIEW_SCT[view][0], "SCT", VIEW_SCT[view][1]
    ds.ViewCodeSequence = [code]
    if source_uid:  # the recombined image names the LE exposure it was computed from
        source = pydicom.Dataset()
        source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = MG_FOR_PRESENTATION, source_uid
        ds.SourceImageSequence = [source]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LOG", -1
    ds.ImagerPixelSpacing = ["0.1", "0.1"]
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = f"{center:g}", f"{width:g}", "LINEAR"
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    return ds


def _write_dicom_pair(cfg: SynthConfig, root: Path, pat: _Patient, pair: _Pair,
                      pixels: dict[str, np.ndarray]) -> tuple[str, str]:
    """Write a pair as two Part-10 files, LE ".dcm" and recombined without suffix (as PACS exports often are);
    return their paths relative to `root`."""
    le_uid = _uid(cfg, pat.pid, pair.index, LE)
    files = []
    for kind, mod, series, suffix in ((LE, "DM", 1, ".dcm"), (RECOMBINED, "CM", 2, "")):
        rel = f"DICOM/{pat.pid:04d}/{series}/IM{pair.index + 1:04d}{suffix}"
        ds = cesm_dataset(pixels[mod], kind, patient_id=f"{pat.pid:04d}", age=pat.age, side=pair.side,
                          view=pair.view, study_uid=_uid(cfg, pat.pid, "study"),
                          series_uid=_uid(cfg, pat.pid, "series", kind),
                          sop_uid=le_uid if kind == LE else _uid(cfg, pat.pid, pair.index, kind),
                          series_number=series, instance_number=pair.index + 1,
                          source_uid=le_uid if kind == RECOMBINED else "")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        files.append(rel)
    return files[0], files[1]
