"""Reader of the CDD-CESM layout: file names, sheet `all` of the annotations, VIA regions, the pair catalog."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vdes_tune.config import IngestConfig
from vdes_tune.errors import BadInputError

LE_DIR = "Low energy images of CDD-CESM"
DES_DIR = "Subtracted images of CDD-CESM"
ANNOTATION_COLUMNS = (
    "Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS",
    "Findings", "View", "Tags", "Machine", "Pathology Classification/ Follow up",
)
PATHOLOGY_COLUMN = "Pathology Classification/ Follow up"
PATHOLOGIES = ("Normal", "Benign", "Malignant")
REGION_SHAPES = ("polygon", "polyline", "ellipse", "circle", "point")
IMAGE_SUFFIXES = (".jpg", ".jpeg")
# Columns of a catalog's pairs, whichever reader made it (this one, or data/dicom/catalog.py).
CATALOG_COLUMNS = ("pair_id", "patient_id", "side", "view", "le_path", "des_path", "le_file", "des_file",
                   "pathology", "pathology_le", "pathology_des", "birads_le", "birads_des", "label", "le_regions",
                   "des_regions", "n_regions")

# The real names include `P281_L_DM_MLO2`, `P99_L_DM_MLO_2` and a space before `.jpg`.
_NAME = re.compile(r"^P(\d+)_([LR])_(DM|CM)_(CC|MLO)(_?\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ImageName:
    """A parsed image name: patient, side, LE (`DM`) or DES (`CM`), view and optional view index."""

    patient_id: int
    side: str
    kind: str
    view: str
    index: str = ""  # view suffix as written, e.g. "2" (MLO2) or "_2" (MLO_2)

    @property
    def pair_id(self) -> str:
        """Key shared by an LE image and its DES: the name without the DM/CM token."""
        return f"P{self.patient_id}_{self.side}_{self.view}{self.index}"

    @property
    def stem(self) -> str:
        return f"P{self.patient_id}_{self.side}_{self.kind}_{self.view}{self.index}"


def parse_image_name(name: str) -> ImageName | None:
    """Parse a file name or stem (whitespace-tolerant, `.jpg` optional); None when it does not fit."""
    stem = name.strip()
    for suffix in IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)].strip()
    m = _NAME.match(stem)
    if not m:
        return None
    pid, side, kind, view, index = m.groups()
    return ImageName(int(pid), side.upper(), kind.upper(), view.upper(), index or "")


@dataclass(frozen=True)
class Rejection:
    """One input that was not used, and why."""

    item: str
    file: str
    reason: str
    kind: str = "bad_input"  # "bad_input" counts for --strict; "excluded" is a rule's choice
    stage: str = "catalog"


@dataclass(frozen=True)
class RawLayout:
    """Where the parts of a raw dataset live."""

    root: Path
    le_dir: Path
    des_dir: Path
    annotations: Path
    segmentations: Path


def _pick(root: Path, pattern: str, preferred: str, what: str) -> Path:
    exact = root / preferred
    if exact.is_file():
        return exact
    found = sorted(p for p in root.iterdir() if p.is_file() and re.fullmatch(pattern, p.name, re.IGNORECASE))
    if not found:
        raise BadInputError(f"{root}: no {what} file (expected {preferred} or a name matching {pattern})")
    return found[0]


def find_layout(root: Path) -> RawLayout:
    """Locate image folders and annotation files; a missing one is a BadInputError naming the path."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: raw dataset folder does not exist")
    if not (root / LE_DIR).is_dir():
        # The TCIA package nests the data one level down ("PKG - CDD-CESM/CDD-CESM/").
        nested = [p for p in root.iterdir() if p.is_dir() and (p / LE_DIR).is_dir()]
        if len(nested) == 1:
            root = nested[0]
    for sub in (LE_DIR, DES_DIR):
        if not (root / sub).is_dir():
            raise BadInputError(f"{root / sub}: image folder is missing")
    return RawLayout(
        root=root,
        le_dir=root / LE_DIR,
        des_dir=root / DES_DIR,
        annotations=_pick(root, r".*annotation.*\.xlsx", "Radiology-manual-annotations.xlsx", "annotation .xlsx"),
        segmentations=_pick(root, r".*segmentation.*\.csv", "Radiology_hand_drawn_segmentations_v2.csv",
                            "segmentation .csv"),
    )


def parse_birads(value: Any) -> list[int]:
    """BI-RADS cell to a list of categories: 4, '4', 4.0 or '4$2'; ValueError when unreadable."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        raise ValueError("empty BIRADS")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value) != int(value):
            raise ValueError(f"BIRADS {value!r} is not an integer")
        parts = [int(value)]
    else:
        parts = [int(float(p)) for p in str(value).split("$") if p.strip()]
    if not parts or any(p < 0 or p > 6 for p in parts):
        raise ValueError(f"BIRADS {value!r} outside 0..6")
    return parts


@dataclass(frozen=True)
class AnnotationRow:
    """The fields of one sheet-`all` row that ingest uses."""

    row: int  # 1-based spreadsheet row number, for messages
    pathology: str
    birads: str
    max_birads: int | None


def read_annotations(path: Path) -> tuple[dict[str, AnnotationRow], list[Rejection]]:
    """Rows of sheet `all` keyed by image stem; bad rows become rejections."""
    try:
        sheet = pd.read_excel(path, sheet_name="all", dtype=object, engine="openpyxl")
    except ValueError as exc:
        raise BadInputError(f"{path}: cannot read sheet 'all': {exc}") from exc
    except Exception as exc:  # zip or XML damage surfaces as many exception types
        raise BadInputError(f"{path}: not a readable .xlsx file: {exc}") from exc
    sheet.columns = [str(c).strip() for c in sheet.columns]
    missing = [c for c in ("Image_name", "BIRADS", PATHOLOGY_COLUMN) if c not in sheet.columns]
    if missing:
        raise BadInputError(f"{path}: sheet 'all' lacks column(s) {missing}; found {list(sheet.columns)}")
    rows: dict[str, AnnotationRow] = {}
    rejected: list[Rejection] = []
    vocabulary = {p.lower(): p for p in PATHOLOGIES}
    for i, rec in enumerate(sheet.to_dict("records")):
        row = i + 2  # header is spreadsheet row 1
        where = f"{path.name} row {row}"
        raw_name = rec.get("Image_name")
        name = parse_image_name(str(raw_name)) if isinstance(raw_name, str) else None
        if name is None:
            rejected.append(Rejection(str(raw_name), where, f"Image_name {raw_name!r} does not parse as "
                                      "P<id>_<L|R>_<DM|CM>_<CC|MLO>"))
            continue
        pathology = vocabulary.get(str(rec.get(PATHOLOGY_COLUMN, "")).strip().lower())
        if pathology is None:
            rejected.append(Rejection(name.stem, where, f"field '{PATHOLOGY_COLUMN}' is "
                                      f"{rec.get(PATHOLOGY_COLUMN)!r}, expected one of {list(PATHOLOGIES)}"))
            continue
        try:
            max_birads: int | None = max(parse_birads(rec.get("BIRADS")))
        except ValueError as exc:
            max_birads = None
            birads_error = str(exc)
        else:
            birads_error = ""
        if name.stem in rows:
            rejected.append(Rejection(name.stem, where, f"duplicate Image_name (first at row {rows[name.stem].row})"))
            continue
        rows[name.stem] = AnnotationRow(row, pathology, "" if birads_error else str(rec.get("BIRADS")).strip(),
                                        max_birads)
    return rows, rejected


def validate_region(shape: dict[str, Any]) -> str | None:
    """Why a VIA region shape is unusable, or None when it is a valid polygon/polyline/ellipse/circle/point."""
    name = shape.get("name")
    if name not in REGION_SHAPES:
        return f"region shape {name!r} not one of {list(REGION_SHAPES)}"
    need = {"polygon": ("all_points_x", "all_points_y"), "polyline": ("all_points_x", "all_points_y"),
            "ellipse": ("cx", "cy", "rx", "ry"), "circle": ("cx", "cy", "r"), "point": ("cx", "cy")}[name]
    lacking = [k for k in need if k not in shape]
    if lacking:
        return f"{name} region lacks {lacking}"
    if name in ("polygon", "polyline"):
        xs, ys = shape["all_points_x"], shape["all_points_y"]
        if not (isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys) and len(xs) >= 1):
            return f"{name} region has mismatched or empty point lists"
        values = xs + ys
    else:
        values = [shape[k] for k in need]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return f"{name} region has non-numeric coordinates"
    return None


def read_regions(path: Path) -> tuple[dict[str, list[dict[str, Any]]], list[Rejection]]:
    """VIA regions keyed by image stem; malformed rows become rejections, empty `{}` regions are ignored."""
    regions: dict[str, list[dict[str, Any]]] = {}
    rejected: list[Rejection] = []
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot open segmentation CSV: {exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "#filename" not in reader.fieldnames or \
                "region_shape_attributes" not in reader.fieldnames:
            raise BadInputError(f"{path}: not a VIA CSV (needs '#filename' and 'region_shape_attributes' columns)")
        for rec in reader:
            line = reader.line_num
            where = f"{path.name} line {line}"
            name = parse_image_name(rec.get("#filename") or "")
            if name is None:
                rejected.append(Rejection(str(rec.get("#filename")), where, "region file name does not parse"))
                continue
            text = (rec.get("region_shape_attributes") or "").strip()
            try:
                shape = json.loads(text) if text else {}
            except json.JSONDecodeError as exc:
                rejected.append(Rejection(name.stem, where, f"malformed region JSON ({exc.msg}): {text[:60]!r}"))
                continue
            if shape == {}:
                continue  # VIA writes `{}` for images without regions; the official helper skips them
            problem = validate_region(shape) if isinstance(shape, dict) else "region JSON is not an object"
            if problem:
                rejected.append(Rejection(name.stem, where, f"malformed region: {problem}"))
                continue
            regions.setdefault(name.stem, []).append({**shape, "line": line})
    return regions, rejected


@dataclass
class Catalog:
    """Usable LE/DES pairs (one row each) and everything that was set aside."""

    pairs: pd.DataFrame
    rejected: list[Rejection] = field(default_factory=list)
    pairs_seen: int = 0


def label_of(cfg: IngestConfig, ann: AnnotationRow) -> tuple[int | None, str]:
    """Class (0 non-malignant, 1 malignant) under the configured rule, or None and why it is excluded."""
    if ann.max_birads is not None and ann.max_birads in cfg.exclude_birads:
        return None, f"BI-RADS {ann.max_birads} excluded by label rule (exclude_birads={list(cfg.exclude_birads)})"
    if cfg.label_rule == "pathology":
        return (1 if ann.pathology == "Malignant" else 0), ""
    if ann.max_birads is None:
        return None, "no readable BIRADS for label_rule=birads"
    return (1 if ann.max_birads >= 4 else 0), ""


def _list_images(folder: Path, kind: str, rejected: list[Rejection]) -> dict[str, tuple[ImageName, Path]]:
    found: dict[str, tuple[ImageName, Path]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        rel = f"{folder.name}/{path.name}"
        name = parse_image_name(path.name) if path.suffix.strip().lower() in IMAGE_SUFFIXES else None
        if name is None:
            rejected.append(Rejection(path.name, rel, "file name does not match P<id>_<L|R>_<DM|CM>_<CC|MLO>.jpg"))
        elif name.kind != kind:
            rejected.append(Rejection(path.name, rel, f"{name.kind} image in the {kind} folder"))
        elif name.pair_id in found:
            rejected.append(Rejection(path.name, rel, f"second file for {name.stem} (first: {found[name.pair_id][1].name})"))
        else:
            found[name.pair_id] = (name, path)
    return found


def build_catalog(layout: RawLayout, cfg: IngestConfig) -> Catalog:
    """Pair LE with DES images, attach labels and regions; set aside what cannot be used, with reasons."""
    rejected: list[Rejection] = []
    le = _list_images(layout.le_dir, "DM", rejected)
    des = _list_images(layout.des_dir, "CM", rejected)
    annotations, bad_rows = read_annotations(layout.annotations)
    regions, bad_regions = read_regions(layout.segmentations)
    rejected += bad_rows + bad_regions
    for pair_id in sorted(set(le) ^ set(des)):
        if pair_id in le:
            name, path = le[pair_id]
            rejected.append(Rejection(pair_id, f"{LE_DIR}/{path.name}", "LE image without its DES "
                                      f"(no {name.stem.replace('_DM_', '_CM_')} in '{DES_DIR}')"))
        else:
            name, path = des[pair_id]
            rejected.append(Rejection(pair_id, f"{DES_DIR}/{path.name}", "DES image without its LE "
                                      f"(no {name.stem.replace('_CM_', '_DM_')} in '{LE_DIR}')"))
    rows = []
    for pair_id in sorted(set(le) & set(des), key=_pair_sort_key):
        (le_name, le_path), (des_name, des_path) = le[pair_id], des[pair_id]
        ann_le, ann_des = annotations.get(le_name.stem), annotations.get(des_name.stem)
        missing = [n.stem for n, a in ((le_name, ann_le), (des_name, ann_des)) if a is None]
        if missing:
            rejected.append(Rejection(pair_id, layout.annotations.name,
                                      f"no annotation row for {', '.join(missing)} in sheet 'all'"))
            continue
        chosen = ann_le if cfg.label_row == "le" else ann_des
        label, why = label_of(cfg, chosen)
        if label is None:
            rejected.append(Rejection(pair_id, f"{layout.annotations.name} row {chosen.row}", why, kind="excluded"))
            continue
        le_regions = regions.get(le_name.stem, [])
        des_regions = regions.get(des_name.stem, [])
        if chosen.pathology != "Normal" and not (le_regions or des_regions):
            rejected.append(Rejection(pair_id, layout.segmentations.name,
                                      f"{chosen.pathology} pair has no usable lesion region to centre a crop on"))
            continue
        rows.append({
            "pair_id": pair_id,
            "patient_id": le_name.patient_id,
            "side": le_name.side,
            "view": le_name.view,
            "le_path": str(le_path),
            "des_path": str(des_path),
            "le_file": f"{LE_DIR}/{le_path.name}",
            "des_file": f"{DES_DIR}/{des_path.name}",
            "pathology": chosen.pathology,
            "pathology_le": ann_le.pathology,
            "pathology_des": ann_des.pathology,
            "birads_le": ann_le.birads,
            "birads_des": ann_des.birads,
            "label": label,
            "le_regions": json.dumps(le_regions),
            "des_regions": json.dumps(des_regions),
            "n_regions": len(le_regions) + len(des_regions),
        })
    pairs = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    return Catalog(pairs=pairs, rejected=rejected, pairs_seen=len(set(le) | set(des)))


def _pair_sort_key(pair_id: str) -> tuple[int, str]:
    return int(pair_id.split("_")[0][1:]), pair_id
