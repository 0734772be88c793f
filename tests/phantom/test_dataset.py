"""Tests of the synthetic CDD-CESM writer against its truth sidecar and independent pixel measurements."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from vdes_tune.config import SynthConfig
from vdes_tune.phantom.dataset import write_dataset
from vdes_tune.errors import BadInputError

LE_DIR, DES_DIR = "Low energy images of CDD-CESM", "Subtracted images of CDD-CESM"
NAME_RE = re.compile(r"^P(\d+)_([LR])_(DM|CM)_(CC|MLO)(?:_?\d+)?\s*\.jpg$")
COLUMNS = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS", "Findings",
           "View", "Tags", "Machine", "Pathology Classification/ Follow up"]
VIA_HEADER = ["#filename", "file_size", "file_attributes", "region_count", "region_id",
              "region_shape_attributes", "region_attributes"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cdd"
    calls: list[int] = []
    summary = write_dataset(SynthConfig(patients=10, size="small", seed=0), out, progress=calls.append)
    assert summary.out == out and summary.patients == 10
    assert sum(calls) == summary.pairs and summary.images == 2 * summary.pairs
    return out


def truth(root: Path) -> list[dict]:
    with open(root / "synthetic_truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def pairs(root: Path) -> dict[str, dict]:
    return {r["pair_id"]: r for r in truth(root)}


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


# ---- layout, names, images -------------------------------------------------------------------------

def test_layout_names_and_pairing(ds: Path) -> None:
    assert sorted(p.name for p in ds.iterdir()) == sorted(
        [LE_DIR, DES_DIR, "Radiology-manual-annotations.xlsx", "Radiology_hand_drawn_segmentations_v2.csv",
         "synthetic_truth.csv"])
    le = sorted(p.name for p in (ds / LE_DIR).iterdir())
    des = sorted(p.name for p in (ds / DES_DIR).iterdir())
    assert len(le) == len(des) == len(pairs(ds))
    for name in le + des:
        m = NAME_RE.match(name)
        assert m, name
        assert name == f"P{m[1]}_{m[2]}_{m[3]}_{m[4]}.jpg", f"quirk in a clean dataset: {name!r}"
    assert all("_DM_" in n for n in le) and all("_CM_" in n for n in des)
    assert {n.replace("_DM_", "_CM_") for n in le} == set(des)
    assert {int(NAME_RE.match(n)[1]) for n in le} == set(range(1, 11))


def test_images_are_gray_uint8_and_sizes_match_truth(ds: Path) -> None:
    for r in pairs(ds).values():
        le, des = read_gray(ds / LE_DIR / r["le_file"]), read_gray(ds / DES_DIR / r["des_file"])
        for img in (le, des):
            assert img.ndim == 2 and img.dtype == np.uint8
        assert le.shape == (int(r["le_height"]), int(r["le_width"]))
        assert des.shape == (int(r["des_height"]), int(r["des_width"]))
        assert 480 <= le.shape[0] <= 545 and 300 <= le.shape[1] <= 340
        assert -10 <= int(r["tx"]) <= 10 and -10 <= int(r["ty"]) <= 10
        # Background near 0 on LE, dark on DES; chest wall on the image edge named by the side.
        assert np.median(le[:, :10] if r["side"] == "L" else le[:, -10:]) > 40
        assert np.percentile(le, 5) < 10 and np.percentile(des, 5) < 35


# ---- xlsx ------------------------------------------------------------------------------------------

def test_xlsx_sheet_all(ds: Path) -> None:
    xls = pd.ExcelFile(ds / "Radiology-manual-annotations.xlsx")
    assert "all" in xls.sheet_names and xls.sheet_names[0] != "all"
    df = pd.read_excel(xls, sheet_name="all")
    assert list(df.columns) == COLUMNS
    files = {p.stem for p in (ds / LE_DIR).iterdir()} | {p.stem for p in (ds / DES_DIR).iterdir()}
    assert len(df) == len(files) and set(df["Image_name"]) == files
    assert set(df["Type"]) == {"DM", "CESM"}
    assert ((df["Type"] == "DM") == df["Image_name"].str.contains("_DM_")).all()
    assert set(df.loc[df["Type"] == "DM", "Breast density (ACR)"]) <= set("ABCD")
    assert set(df.loc[df["Type"] == "CESM", "Breast density (ACR)"]) == {"_"}
    assert set(df["Side"]) <= {"L", "R"} and set(df["View"]) <= {"CC", "MLO"}
    assert set(df["Machine"]) <= {1, 2}
    assert set(df["Pathology Classification/ Follow up"]) <= {"Normal", "Benign", "Malignant"}
    truth_by_pair = pairs(ds)
    for _, row in df.iterrows():
        pair_id = row["Image_name"].replace("_DM_", "_").replace("_CM_", "_")
        t = truth_by_pair[pair_id]
        assert row["Patient_ID"] == int(t["patient_id"]) and row["Side"] == t["side"]
        assert row["Pathology Classification/ Follow up"] == t["pathology"]
        birads = [int(v) for v in str(row["BIRADS"]).split("$")]
        assert len(birads) == len(str(row["Findings"]).split("$"))
        assert str(row["BIRADS"]) == t["birads"]
        if t["pathology"] == "Normal":
            assert birads == [1]
        elif t["pathology"] == "Benign":
            assert set(birads) <= {2, 3}
        else:
            assert birads[0] >= 4 and all(b == 2 for b in birads[1:])


# ---- VIA CSV ---------------------------------------------------------------------------------------

def region_centre(shape: dict) -> tuple[float, float]:
    if shape["name"] in ("polygon", "polyline"):
        return float(np.mean(shape["all_points_x"])), float(np.mean(shape["all_points_y"]))
    return float(shape["cx"]), float(shape["cy"])


def test_via_regions_sit_on_truth_lesions(ds: Path) -> None:
    with open(ds / "Radiology_hand_drawn_segmentations_v2.csv", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == VIA_HEADER
        rows = list(reader)
    assert rows
    lesions = [r for r in truth(ds) if r["lesion_kind"]]
    by_file: dict[str, list[dict]] = {}
    for r in lesions:
        if r["annotated_on"] in ("DM", "both"):
            by_file.setdefault(r["le_file"], []).append(r)
        by_file.setdefault(r["des_file"], []).append(r)
    counts: dict[str, int] = {}
    for fname, size, fattr, count, rid, shape_json, rattr in rows:
        assert fname in by_file, f"region on an image without lesions: {fname}"
        folder = LE_DIR if "_DM_" in fname else DES_DIR
        assert int(size) == (ds / folder / fname).stat().st_size
        assert json.loads(fattr) == {} and json.loads(rattr) == {}
        shape = json.loads(shape_json)
        assert shape["name"] in {"polygon", "polyline", "ellipse", "circle", "point"}
        if shape["name"] in ("polygon", "polyline"):
            assert len(shape["all_points_x"]) == len(shape["all_points_y"]) >= 3
            assert all(isinstance(v, int) for v in shape["all_points_x"] + shape["all_points_y"])
        cx, cy = region_centre(shape)
        # DM regions are in LE pixels; CM regions in DES pixels = LE pixels minus the shift.
        dists = []
        for t in by_file[fname]:
            tx, ty = (int(t["tx"]), int(t["ty"])) if folder == DES_DIR else (0, 0)
            dists.append(np.hypot(cx - (float(t["cx"]) - tx), cy - (float(t["cy"]) - ty)) / float(t["radius"]))
        assert min(dists) < 1.0, (fname, shape)
        if shape["name"] == "circle":
            assert shape["r"] >= min(float(t["radius"]) for t in by_file[fname])
        assert 0 <= int(rid) < int(count)
        counts[fname] = counts.get(fname, 0) + 1
    assert counts == {f: len(v) for f, v in by_file.items()}
    # A DM region exists exactly for lesions not drawn on CM only.
    assert {r["le_file"] for r in lesions if r["annotated_on"] == "both"} == {f for f in counts if "_DM_" in f}


def test_region_shapes_and_cm_only_annotations(tmp_path: Path) -> None:
    write_dataset(SynthConfig(patients=40, seed=5), tmp_path / "d")
    rows = [r for r in truth(tmp_path / "d") if r["lesion_kind"]]
    shapes = {r["region_shape"] for r in rows}
    assert {"polygon", "ellipse", "circle"} <= shapes <= {"polygon", "ellipse", "circle", "polyline", "point"}
    assert {"mass", "calcification", "non_mass"} == {r["lesion_kind"] for r in rows}
    cm_only = sum(r["annotated_on"] == "CM" for r in rows) / len(rows)
    assert 0.02 < cm_only < 0.3
    assert all(r["annotated_on"] in ("CM", "both") for r in rows)


# ---- shift convention and registration -------------------------------------------------------------

def mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    joint = np.bincount(a.astype(np.int64).ravel() * 256 + b.ravel(), minlength=65536).reshape(256, 256)
    p = joint / joint.sum()
    outer = p.sum(1, keepdims=True) @ p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / outer[nz])).sum())


def mi_at(le: np.ndarray, des: np.ndarray, tx: int, ty: int) -> float:
    """MI between LE and the registered DES, R[y, x] = DES[y - ty, x - tx], on their overlap."""
    (h, w), (dh, dw) = le.shape, des.shape
    y0, y1, x0, x1 = max(0, ty), min(h, dh + ty), max(0, tx), min(w, dw + tx)
    return mutual_info(le[y0:y1, x0:x1], des[y0 - ty:y1 - ty, x0 - tx:x1 - tx])


def register(le: np.ndarray, des: np.ndarray) -> tuple[int, int]:
    coarse = [(tx, ty) for tx in range(-10, 11, 5) for ty in range(-10, 11, 5)]
    bx, by = max(coarse, key=lambda s: mi_at(le, des, *s))
    fine = [(bx + i, by + j) for i in range(-2, 3) for j in range(-2, 3)]
    return max(fine, key=lambda s: mi_at(le, des, *s))


def test_two_level_mi_recovers_every_shift(ds: Path) -> None:
    found = []
    for r in pairs(ds).values():
        le, des = read_gray(ds / LE_DIR / r["le_file"]), read_gray(ds / DES_DIR / r["des_file"])
        found.append(register(le, des) == (int(r["tx"]), int(r["ty"])))
    assert all(found), f"recovered {sum(found)}/{len(found)}"


def agreement(le_mask: np.ndarray, des_mask: np.ndarray, tx: int, ty: int) -> float:
    (h, w), (dh, dw) = le_mask.shape, des_mask.shape
    y0, y1, x0, x1 = max(0, ty), min(h, dh + ty), max(0, tx), min(w, dw + tx)
    return float((le_mask[y0:y1, x0:x1] == des_mask[y0 - ty:y1 - ty, x0 - tx:x1 - tx]).mean())


def otsu_mask(img: np.ndarray) -> np.ndarray:
    return cv2.threshold(cv2.GaussianBlur(img, (5, 5), 0), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1] > 0


def test_shift_convention_from_breast_outline(ds: Path) -> None:
    # Thresholded breast masks line up better under R[y, x] = DES[y - ty, x - tx] than under any other
    # sign or axis order (the exact shift is checked by the MI test).
    checked = 0
    for r in pairs(ds).values():
        tx, ty = int(r["tx"]), int(r["ty"])
        le = otsu_mask(read_gray(ds / LE_DIR / r["le_file"]))
        des = otsu_mask(read_gray(ds / DES_DIR / r["des_file"]))
        right = agreement(le, des, tx, ty)
        for alt in {(-tx, -ty), (ty, tx), (-tx, ty), (tx, -ty)}:
            if np.hypot(alt[0] - tx, alt[1] - ty) < 8:  # too close to tell apart from a mask edge
                continue
            checked += 1
            assert right > agreement(le, des, *alt), (r["pair_id"], alt)
    assert checked >= 20


def test_shift_sign_from_lesion_pixels(ds: Path) -> None:
    # A strongly enhancing lesion is bright at its truth centre minus the shift in DES pixels, and
    # less so at the centre plus the shift (what the opposite sign convention would predict).
    checked = 0
    for r in truth(ds):
        if r["lesion_kind"] != "mass" or float(r["des_enhancement"]) < 40:
            continue
        tx, ty, cx, cy = int(r["tx"]), int(r["ty"]), float(r["cx"]), float(r["cy"])
        if 2 * np.hypot(tx, ty) < 2 * float(r["radius"]):  # the wrong spot must be off the lesion
            continue
        des = cv2.GaussianBlur(read_gray(ds / DES_DIR / r["des_file"]).astype(np.float32), (0, 0), 2)
        right = des[int(round(cy - ty)), int(round(cx - tx))]
        wrong = des[int(round(cy + ty)), int(round(cx + tx))]
        assert right > wrong, r["pair_id"]
        checked += 1
    assert checked >= 1


# ---- contrast: DES carries lesion information -------------------------------------------------------

def test_malignant_enhances_more_than_benign(ds: Path, tmp_path: Path) -> None:
    write_dataset(SynthConfig(patients=25, seed=3), tmp_path / "d")
    rows = [r for root in (ds, tmp_path / "d") for r in truth(root) if r["lesion_kind"]]
    enh = {m: [float(r["des_enhancement"]) for r in rows if r["malignant"] == m] for m in "01"}
    assert enh["0"] and enh["1"] and np.mean(enh["1"]) > np.mean(enh["0"]) + 30
    measured: dict[str, list[float]] = {"0": [], "1": []}
    for root in (ds, tmp_path / "d"):
        for r in truth(root):
            if not r["lesion_kind"]:
                continue
            des = read_gray(root / DES_DIR / r["des_file"]).astype(np.float32)
            x, y, rad = float(r["cx"]) - int(r["tx"]), float(r["cy"]) - int(r["ty"]), float(r["radius"])
            yy, xx = np.ogrid[: des.shape[0], : des.shape[1]]
            disk = (xx - x) ** 2 + (yy - y) ** 2 <= (rad / 2) ** 2
            measured[r["malignant"]].append(float(des[disk].mean()))
    assert np.mean(measured["1"]) > np.mean(measured["0"]) + 20, measured


def test_lesions_inside_breast_and_away_from_edges(ds: Path) -> None:
    for r in truth(ds):
        if not r["lesion_kind"]:
            continue
        h, w, dh, dw = (int(r[k]) for k in ("le_height", "le_width", "des_height", "des_width"))
        cx, cy, tx, ty = float(r["cx"]), float(r["cy"]), int(r["tx"]), int(r["ty"])
        m = 0.2 * min(h, w) - 1
        assert m <= cx <= w - m and m <= cy <= h - m
        assert m <= cx - tx <= dw - m and m <= cy - ty <= dh - m
        assert 6 <= float(r["radius"]) <= 18
        le = read_gray(ds / LE_DIR / r["le_file"])
        assert le[int(cy), int(cx)] > 40  # on breast tissue, not background


# ---- determinism, quirks, refusal ---------------------------------------------------------------------

def test_deterministic_bytes_and_seed_sensitivity(tmp_path: Path) -> None:
    a = tree_hashes(write_dataset(SynthConfig(patients=3, seed=7), tmp_path / "a").out)
    b = tree_hashes(write_dataset(SynthConfig(patients=3, seed=7), tmp_path / "b").out)
    c = tree_hashes(write_dataset(SynthConfig(patients=3, seed=8), tmp_path / "c").out)
    assert a == b
    assert a != c and not set(a.items()) & {kv for kv in c.items() if kv[0].endswith(".jpg")}
    # Patient 1 does not depend on how many patients there are.
    d = tree_hashes(write_dataset(SynthConfig(patients=1, seed=7), tmp_path / "d").out)
    p1 = {k: v for k, v in a.items() if re.search(r"/P1_", k)}
    assert p1 and p1 == {k: v for k, v in d.items() if k.endswith(".jpg")}
    assert not list(tmp_path.glob(".*partial*"))


def test_quirks(tmp_path: Path) -> None:
    root = write_dataset(SynthConfig(patients=10, seed=0, quirks=True), tmp_path / "q").out
    names = [p.name for d in (LE_DIR, DES_DIR) for p in (root / d).iterdir()]
    assert all(NAME_RE.match(n) for n in names)
    assert any(n.endswith(" .jpg") for n in names)
    assert any(re.search(r"_MLO2 ?\.jpg$", n) for n in names) and any(re.search(r"_MLO_2 ?\.jpg$", n) for n in names)
    df = pd.read_excel(root / "Radiology-manual-annotations.xlsx", sheet_name="all")
    assert (df["Image_name"] != df["Image_name"].str.strip()).any()
    assert set(df["View"]) <= {"CC", "MLO"}
    assert set(df["Image_name"].str.strip()) == {n[:-4].strip() for n in names}
    t = truth(root)
    assert any(r["pair_id"].endswith(("MLO2", "MLO_2")) for r in t)
    on_disk = set(names)
    assert all(r["le_file"] in on_disk and r["des_file"] in on_disk for r in t)
    with open(root / "Radiology_hand_drawn_segmentations_v2.csv", newline="") as fh:
        assert all(row["#filename"] in on_disk for row in csv.DictReader(fh))
    # Quirks rename files only: the pixels are those of the clean dataset.
    clean = write_dataset(SynthConfig(patients=10, seed=0), tmp_path / "c").out
    strip = lambda n: re.sub(r"_MLO_?2", "_MLO", n[:-4].strip())  # noqa: E731
    qimg = {strip(p.name): p.read_bytes() for d in (LE_DIR, DES_DIR) for p in (root / d).iterdir()}
    cimg = {strip(p.name): p.read_bytes() for d in (LE_DIR, DES_DIR) for p in (clean / d).iterdir()}
    assert qimg == cimg


def test_refuses_non_empty_output(tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "x.txt").write_text("keep me")
    with pytest.raises(BadInputError, match=str(out)):
        write_dataset(SynthConfig(patients=1), out)
    assert (out / "x.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_dataset(SynthConfig(patients=1), empty).pairs >= 1
