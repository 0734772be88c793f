"""A CESM DICOM folder plus its labels CSV as the catalog ingest reads: the images found, classified, paired
by study and labelled."""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom

from vdes_tune.config import IngestConfig
from vdes_tune.data.cdd_cesm import (CATALOG_COLUMNS, LE_DIR, PATHOLOGIES, AnnotationRow, Catalog, Rejection,
                                     label_of, parse_birads, validate_region)
from vdes_tune.data.dicom.kinds import HIGH_ENERGY, KIND_RULES, LE, RECOMBINED, SKIP, KindRule, classify
from vdes_tune.data.dicom.pixels import DICOMDIR_SOP, is_dicom_file, read_dataset
from vdes_tune.errors import BadInputError, UnreadableImage
from vdes_tune.workspace import hash_files

LABELS_NAME = "labels.csv"
# Files with these suffixes that are not DICOM are ignored (listed as excluded); any other non-DICOM file
# (".dcm", no suffix, UID-like numeric suffixes) is bad input, since it was probably meant to be an image.
OTHER_SUFFIXES = {".csv", ".txt", ".md", ".json", ".xml", ".xlsx", ".xls", ".pdf", ".docx", ".doc", ".jpg",
                  ".jpeg", ".png", ".html", ".zip", ".yaml", ".yml", ".log", ".ini"}
LABEL_COLUMNS = ("patient_id", "laterality", "view", "pathology", "birads", "study_uid", "le_regions",
                 "des_regions")


@dataclass(frozen=True)
class DicomLayout:
    """A CESM DICOM dataset: a folder of DICOM files (any names and nesting) and the labels CSV at its top."""

    root: Path
    labels: Path


def find_labels(root: Path) -> Path | None:
    """The labels CSV at the top of `root`: labels.csv, else the one *label*.csv; None when there is none."""
    exact = root / LABELS_NAME
    if exact.is_file():
        return exact
    found = sorted(p for p in root.iterdir() if p.is_file() and re.fullmatch(r".*label.*\.csv", p.name, re.I))
    if len(found) > 1:
        raise BadInputError(f"{root}: several label CSVs ({', '.join(p.name for p in found)}); "
                            f"name the one to use {LABELS_NAME}")
    return found[0] if found else None


def is_dicom_dataset(root: str | Path) -> bool:
    """Whether `root` is a DICOM dataset for ingest: a labels CSV at its top (see find_labels) and no CDD-CESM
    image folder."""
    root = Path(root)
    if not root.is_dir():
        return False
    cdd = [root, *(p for p in root.iterdir() if p.is_dir())]  # CDD-CESM may sit one level down
    return not any((p / LE_DIR).is_dir() for p in cdd) and find_labels(root) is not None


def find_dicom_layout(root: str | Path) -> DicomLayout:
    """The layout of a DICOM dataset; a BadInputError names the folder when the labels CSV is missing."""
    root = Path(root)
    labels = find_labels(root) if root.is_dir() else None
    if labels is None:
        raise BadInputError(f"{root}: not a DICOM dataset (no {LABELS_NAME} at its top)")
    return DicomLayout(root, labels)


def _files(layout: DicomLayout) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(layout.root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and path != layout.labels:
                out.append(path)
    return out


def input_fingerprints(layout: DicomLayout) -> dict[str, str]:
    """Images by name, size and mtime (cheap on thousands of large files); the labels CSV by content."""
    return {"images": hash_files(_files(layout), layout.root, content=False),
            "labels": hash_files([layout.labels], layout.root, content=True)}


@dataclass(frozen=True)
class DicomImage:
    """The tags of one usable LE or recombined image."""

    path: Path
    file: str  # relative to the dataset root, for messages
    kind: str
    patient: str  # PatientID as written
    study_uid: str
    study_date: str
    side: str
    view: str
    sop_uid: str
    sources: tuple[str, ...]  # SOP Instance UIDs this image was derived from (Source Image Sequence)
    order: tuple[str, int]  # acquisition time, instance number: order of retakes


# View Code Sequence codes (CID 4014) for files without View Position: SNOMED CT and the older SNOMED-RT.
VIEW_CODES = {"399162004": "CC", "R-10242": "CC", "399368009": "MLO", "R-10226": "MLO"}


def _view(ds: pydicom.Dataset) -> str:
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if not view and ds.get("ViewCodeSequence"):
        view = VIEW_CODES.get(str(ds.ViewCodeSequence[0].get("CodeValue", "")).strip(), "")
    return view


def _truncation(ds: pydicom.Dataset, path: Path) -> str:
    """Why the deferred, uncompressed PixelData runs past the end of the file; "" when it fits."""
    raw = ds.get_item("PixelData", keep_deferred=True)
    length, tell = getattr(raw, "length", None), getattr(raw, "value_tell", None)
    if length is None or tell is None or length == 0xFFFFFFFF:
        return ""  # read already, or encapsulated: decoding at the process stage finds any damage
    size = path.stat().st_size
    return "" if tell + length <= size else (f"truncated file: PixelData needs {length} bytes from offset {tell}, "
                                            f"the file has {size} bytes")


def read_image(path: Path, root: Path, rules: tuple[KindRule, ...] = KIND_RULES) -> DicomImage | Rejection:
    """Tags of one file without loading its pixels; a Rejection says why the file cannot be used."""
    rel = path.relative_to(root).as_posix()
    if not is_dicom_file(path):
        if path.suffix.lower() in OTHER_SUFFIXES:
            return Rejection(rel, rel, "not a DICOM file (ignored)", kind="excluded")
        return Rejection(rel, rel, "not a DICOM Part-10 file (no DICM header)")
    try:
        ds = read_dataset(path, rel, defer_size=4096)  # pixel data stays on disk
        return _image(ds, path, rel, rules)
    except UnreadableImage as exc:
        return Rejection(rel, rel, exc.reason)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:  # a malformed attribute value
        return Rejection(rel, rel, f"unreadable attribute value ({type(exc).__name__}: {exc})")


def _image(ds: pydicom.Dataset, path: Path, rel: str, rules: tuple[KindRule, ...]) -> DicomImage | Rejection:
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP:
        return Rejection(rel, rel, "DICOMDIR index, not an image (ignored)", kind="excluded")
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if not modality:
        return Rejection(rel, rel, "no Modality tag (truncated or incomplete header)")
    if modality != "MG":
        return Rejection(rel, rel, f"modality {modality} is not MG (ignored)", kind="excluded")
    kind, why = classify(ds, rules)
    if kind is None:
        return Rejection(rel, rel, why)
    if kind == SKIP:
        return Rejection(rel, rel, f"not an LE or recombined acquisition ({why})", kind="excluded")
    if kind == HIGH_ENERGY:
        return Rejection(rel, rel, f"high-energy image, not used ({why})", kind="excluded")
    if "PixelData" not in ds:
        return Rejection(rel, rel, "no pixel data (PixelData element missing)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    problem = (f"multi-frame image ({frames} frames); one 2-D frame per file is expected" if frames != 1
               else _truncation(ds, path))
    if problem:
        return Rejection(rel, rel, problem)
    side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "") or "").strip().upper()
    view = _view(ds)
    tags = (("PatientID", ds.get("PatientID")), ("StudyInstanceUID", ds.get("StudyInstanceUID")),
            ("ImageLaterality/Laterality", side), ("ViewPosition", view))
    missing = [name for name, value in tags if not str(value or "").strip()]
    if missing:
        return Rejection(rel, rel, f"missing pairing tag(s) {', '.join(missing)}")
    if side not in ("L", "R"):
        return Rejection(rel, rel, f"laterality {side!r} is not L or R; cannot pair")
    if view not in ("CC", "MLO"):
        return Rejection(rel, rel, f"view {view!r} is not CC or MLO (ignored)", kind="excluded")
    sources = tuple(str(item.get("ReferencedSOPInstanceUID", "")) for item in ds.get("SourceImageSequence", []))
    order = (str(ds.get("AcquisitionTime", "") or ds.get("ContentTime", "") or ""),
             int(ds.get("InstanceNumber", 0) or 0))
    return DicomImage(path, rel, kind, str(ds.PatientID).strip(), str(ds.StudyInstanceUID).strip(),
                      str(ds.get("StudyDate", "") or ""), side, view, str(ds.get("SOPInstanceUID", "")), sources,
                      order)


def _pair_group(les: list[DicomImage], recs: list[DicomImage],
                rejected: list[Rejection]) -> list[tuple[DicomImage, DicomImage]]:
    """LE/recombined pairs among the images of one study, side and view; the rest become rejections."""
    pairs = []
    for rec in list(recs):  # a recombined image naming exactly one LE of the group as its source pairs with it
        linked = [le for le in les if le.sop_uid and le.sop_uid in rec.sources]
        if len(linked) == 1:
            pairs.append((linked[0], rec))
            les.remove(linked[0])
            recs.remove(rec)
    if len(les) == 1 and len(recs) == 1:
        pairs.append((les[0], recs[0]))
    elif les and recs:
        files = ", ".join(i.file for i in les + recs)
        for image in les + recs:
            rejected.append(Rejection(image.file, image.file, f"ambiguous pairing: {len(les)} LE and {len(recs)} "
                                      f"recombined images of one study/side/view and no Source Image Sequence "
                                      f"link between them ({files})"))
    else:
        for image in les + recs:
            other = "recombined" if image.kind == LE else "LE"
            rejected.append(Rejection(image.file, image.file, f"{'LE' if image.kind == LE else 'recombined'} image "
                                      f"without its {other} image (same StudyInstanceUID, laterality, view)"))
    return pairs


def _integer(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 16 else None


def _patient_numbers(patients: set[str]) -> dict[str, int]:
    """Integer patient ids for the catalog: the PatientIDs themselves when all are distinct integers, else 1..N
    in sorted order (the mapping is recorded in the ingest manifest)."""
    numbers = {p: _integer(p) for p in patients}
    if None not in numbers.values() and len(set(numbers.values())) == len(patients):
        return numbers  # type: ignore[return-value]
    return {p: i for i, p in enumerate(sorted(patients), start=1)}


def _same_patient(a: str, b: str) -> bool:
    # Spreadsheets drop leading zeros, so "007" in the CSV means PatientID "0007".
    return a == b or (_integer(a) is not None and _integer(a) == _integer(b))


@dataclass(frozen=True)
class LabelRow:
    """One row of the labels CSV."""

    line: int
    patient: str
    side: str
    view: str
    study_uid: str
    annotation: AnnotationRow
    le_regions: list[dict[str, Any]]
    des_regions: list[dict[str, Any]]


def _regions(text: str, column: str, line: int, where: str, item: str,
             rejected: list[Rejection]) -> list[dict[str, Any]]:
    text = (text or "").strip()
    if not text:
        return []
    try:
        shapes = json.loads(text)
    except json.JSONDecodeError as exc:
        rejected.append(Rejection(item, where, f"malformed region JSON in '{column}' ({exc.msg}): {text[:60]!r}"))
        return []
    if not isinstance(shapes, list):
        shapes = [shapes]
    out = []
    for shape in shapes:
        if shape == {}:
            continue  # VIA writes `{}` for an image without regions
        problem = validate_region(shape) if isinstance(shape, dict) else "region is not a JSON object"
        if problem:
            rejected.append(Rejection(item, where, f"malformed region in '{column}': {problem}"))
        else:
            out.append({**shape, "line": line})
    return out


def read_labels(path: Path) -> tuple[list[LabelRow], list[Rejection]]:
    """Rows of the labels CSV (columns in docs/ingest.md, "DICOM input"); bad rows and regions become rejections."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot open labels CSV: {exc}") from exc
    rows: list[LabelRow] = []
    rejected: list[Rejection] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    vocabulary = {p.lower(): p for p in PATHOLOGIES}
    with handle:
        reader = csv.DictReader(handle)
        fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
        missing = [c for c in ("patient_id", "laterality", "view", "pathology") if c not in fields]
        if missing:
            raise BadInputError(f"{path}: labels CSV lacks column(s) {missing}; found {list(fields)}")
        for rec in reader:
            line = reader.line_num
            get = {c: str(rec.get(fields[c]) or "").strip() if c in fields else "" for c in LABEL_COLUMNS}
            where = f"{path.name} line {line}"
            patient, view = get["patient_id"], get["view"].upper()
            side = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}.get(get["laterality"].upper(), "")
            item = f"{patient}_{side}_{view}"
            problem = ("empty field 'patient_id'" if not patient else
                       f"field 'laterality' is {get['laterality']!r}, expected L or R" if side not in ("L", "R") else
                       f"field 'view' is {get['view']!r}, expected CC or MLO" if view not in ("CC", "MLO") else
                       "")
            pathology = vocabulary.get(get["pathology"].lower())
            if not problem and pathology is None:
                problem = f"field 'pathology' is {get['pathology']!r}, expected one of {list(PATHOLOGIES)}"
            if problem:
                rejected.append(Rejection(item, where, problem))
                continue
            key = (str(_integer(patient) if _integer(patient) is not None else patient), side, view,
                   get["study_uid"])
            if key in seen:
                rejected.append(Rejection(item, where, f"duplicate row (first at line {seen[key]})"))
                continue
            seen[key] = line
            try:
                max_birads = max(parse_birads(get["birads"])) if get["birads"] else None
                birads = get["birads"] if max_birads is not None else ""
            except ValueError:
                max_birads, birads = None, ""
            rows.append(LabelRow(line, patient, side, view, get["study_uid"],
                                 AnnotationRow(line, pathology, birads, max_birads),
                                 _regions(get["le_regions"], "le_regions", line, where, item, rejected),
                                 _regions(get["des_regions"], "des_regions", line, where, item, rejected)))
    return rows, rejected


def _find_label(rows: list[LabelRow], le: DicomImage, studies: int) -> tuple[LabelRow | None, str]:
    """The label row of a pair: one naming its study, else one without a study when the patient has only one
    study with this side and view."""
    mine = [r for r in rows if _same_patient(r.patient, le.patient) and (r.side, r.view) == (le.side, le.view)]
    exact = [r for r in mine if r.study_uid == le.study_uid]
    if exact:
        return exact[0], ""
    loose = [r for r in mine if not r.study_uid]
    if loose and studies > 1:
        return None, (f"label row at line {loose[0].line} has no study_uid but patient {le.patient} has {studies} "
                      f"studies with {le.side} {le.view} images; add the study_uid column")
    return (loose[0], "") if loose else (None, "")


def build_dicom_catalog(layout: DicomLayout, cfg: IngestConfig, rules: tuple[KindRule, ...] = KIND_RULES
                        ) -> tuple[Catalog, dict[int, str]]:
    """Pair LE with recombined (DES) images, attach labels and regions: the same Catalog as build_catalog, plus the
    catalog's integer patient ids mapped to the PatientIDs they stand for."""
    rejected: list[Rejection] = []
    images: list[DicomImage] = []
    for path in _files(layout):
        found = read_image(path, layout.root, rules)
        (images if isinstance(found, DicomImage) else rejected).append(found)
    labels, bad_rows = read_labels(layout.labels)
    rejected += bad_rows
    groups: dict[tuple[str, str, str, str], list[DicomImage]] = {}
    for image in images:
        groups.setdefault((image.patient, image.study_uid, image.side, image.view), []).append(image)
    pairs: list[tuple[DicomImage, DicomImage]] = []
    unpaired = 0
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda i: (i.order, i.file))
        before = len(rejected)
        pairs += _pair_group([i for i in members if i.kind == LE], [i for i in members if i.kind == RECOMBINED],
                             rejected)
        unpaired += len(rejected) - before
    numbers = _patient_numbers({le.patient for le, _ in pairs})
    pairs.sort(key=lambda p: (numbers[p[0].patient], p[0].study_date, p[0].study_uid, p[0].side, p[0].view,
                              p[0].order, p[0].file))
    studies: dict[tuple[str, str, str], set[str]] = {}
    for le, _ in pairs:
        studies.setdefault((le.patient, le.side, le.view), set()).add(le.study_uid)
    taken: dict[str, int] = {}
    rows = []
    for le, rec in pairs:
        base = f"P{numbers[le.patient]}_{le.side}_{le.view}"
        taken[base] = taken.get(base, 0) + 1
        pair_id = base if taken[base] == 1 else f"{base}_{taken[base]}"  # later studies or retakes: _2, _3
        row, why = _find_label(labels, le, len(studies[(le.patient, le.side, le.view)]))
        if row is None:
            rejected.append(Rejection(pair_id, layout.labels.name, why or f"no label row for patient {le.patient} "
                                      f"{le.side} {le.view} in {layout.labels.name} (files {le.file}, {rec.file})"))
            continue
        label, why = label_of(cfg, row.annotation)
        if label is None:
            rejected.append(Rejection(pair_id, f"{layout.labels.name} line {row.line}", why, kind="excluded"))
            continue
        if row.annotation.pathology != "Normal" and not (row.le_regions or row.des_regions):
            rejected.append(Rejection(pair_id, f"{layout.labels.name} line {row.line}", f"{row.annotation.pathology}"
                                      " pair has no usable lesion region to centre a crop on"))
            continue
        rows.append({
            "pair_id": pair_id, "patient_id": numbers[le.patient], "side": le.side, "view": le.view,
            "le_path": str(le.path), "des_path": str(rec.path), "le_file": le.file, "des_file": rec.file,
            "pathology": row.annotation.pathology, "pathology_le": row.annotation.pathology,
            "pathology_des": row.annotation.pathology, "birads_le": row.annotation.birads,
            "birads_des": row.annotation.birads, "label": label, "le_regions": json.dumps(row.le_regions),
            "des_regions": json.dumps(row.des_regions), "n_regions": len(row.le_regions) + len(row.des_regions),
        })
    catalog = Catalog(pairs=pd.DataFrame(rows, columns=list(CATALOG_COLUMNS)), rejected=rejected,
                      pairs_seen=len(pairs) + unpaired)  # an unpaired or ambiguous image counts as a pair found
    return catalog, {n: p for p, n in sorted(numbers.items(), key=lambda kv: kv[1])}
