"""DICOM input: pixels, vendor classification, `synth --format dicom` and ingest of a CESM DICOM folder, checked
against the JPEG phantom of the same seed and its synthetic_truth.csv."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from typer.testing import CliRunner

from vdes_tune.cli import app
from vdes_tune.config import IngestConfig, SynthConfig
from vdes_tune.data import dicom
from vdes_tune.data.cdd_cesm import DES_DIR, LE_DIR, build_catalog, find_layout
from vdes_tune.data.pairs import decode_image, read_gray
from vdes_tune.phantom.dataset import cesm_dataset, write_dataset
from vdes_tune.errors import BadInputError, UnreadableImage
from vdes_tune.stages import ingest
from vdes_tune.workspace import Workspace

SEED, PATIENTS, CROP = 7, 5, 64  # seed 7: 18 pairs, 6 normal, 6 benign, 6 malignant
MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"  # PS3.4: Digital Mammography X-Ray Image Storage - For Presentation


def _truth(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "synthetic_truth.csv", dtype={"birads": str})


def _pairs(root: Path) -> pd.DataFrame:
    return _truth(root).drop_duplicates("pair_id").set_index("pair_id")


@pytest.fixture(scope="module")
def dicom_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dicom") / "raw"
    result = CliRunner().invoke(app, ["synth", str(out), "--format", "dicom", "--patients", str(PATIENTS),
                                      "--seed", str(SEED), "--json"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def jpeg_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(SynthConfig(patients=PATIENTS, seed=SEED), tmp_path_factory.mktemp("jpeg") / "raw").out


# ---- pixels ----------------------------------------------------------------------------------------------------

def _image(stored: list[list[int]], photometric: str = "MONOCHROME2", bits: int = 12, **tags) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    array = np.array(stored, dtype=np.uint16)
    ds.Rows, ds.Columns = array.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = array.tobytes()
    return ds


def test_read_pixels_applies_the_rescale_and_inverts_monochrome1() -> None:
    stored = [[0, 1], [100, 4095]]
    # 2 * v - 100 by hand; the 12-bit range 0..4095 rescales to -100..8090, so MONOCHROME1 is 7990 - (2 v - 100).
    plain = dicom.read_pixels(_image(stored, RescaleSlope=2, RescaleIntercept=-100))
    np.testing.assert_array_equal(plain, [[-100, -98], [100, 8090]])
    assert plain.dtype == np.float64
    inverted = dicom.read_pixels(_image(stored, "MONOCHROME1", RescaleSlope=2, RescaleIntercept=-100))
    np.testing.assert_array_equal(inverted, [[8090, 8088], [7890, -100]])
    np.testing.assert_array_equal(dicom.read_pixels(_image(stored)), stored)


def test_to_uint8_uses_the_voi_window_else_the_stored_bit_range() -> None:
    stored = [[0, 2048], [3000, 4095]]
    # LINEAR, centre 2048, width 4096: y = ((x - 2047.5) / 4095 + 0.5) * 255, clipped, rounded.
    windowed = dicom.to_uint8(_image(stored, WindowCenter="2048", WindowWidth="4096"))
    np.testing.assert_array_equal(windowed, [[0, 128], [187, 255]])
    # No window: 0..4095 onto 0..255.
    np.testing.assert_array_equal(dicom.to_uint8(_image(stored)), [[0, 128], [187, 255]])
    narrow = dicom.to_uint8(_image(stored, WindowCenter="3000", WindowWidth="101"))  # (0.5 / 100 + 0.5) * 255
    np.testing.assert_array_equal(narrow, [[0, 0], [129, 255]])
    # MONOCHROME1: low stored values are bright; the window centre is mirrored with the pixels (4095 - 1000).
    mono1 = dicom.to_uint8(_image([[0, 1000], [4095, 3000]], "MONOCHROME1", WindowCenter="1000", WindowWidth="500"))
    np.testing.assert_array_equal(mono1, [[255, 128], [0, 0]])


def test_read_pixels_names_the_file_for_unreadable_input(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file")
    with pytest.raises(UnreadableImage, match="notes.dcm: not a DICOM Part-10 file"):
        dicom.read_pixels(text)
    no_pixels = _image([[1, 2]])
    del no_pixels.PixelData
    with pytest.raises(UnreadableImage, match="no pixel data"):
        dicom.read_pixels(no_pixels)
    with pytest.raises(UnreadableImage, match="multi-frame"):
        dicom.read_pixels(_image([[1, 2], [3, 4]], NumberOfFrames=2))


# ---- vendor rules ----------------------------------------------------------------------------------------------

def _tags(manufacturer: str, image_type: list[str], **tags) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.Manufacturer, ds.ImageType, ds.SOPClassUID = manufacturer, image_type, MG_PRESENTATION
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize("manufacturer, image_type, tags, kind", [
    # GE SenoBright: the token is value 4 (an observed GE export)
    ("GE MEDICAL SYSTEMS", ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"], {"KVP": "49"}, "le"),
    ("GE Healthcare", ["ORIGINAL", "PRIMARY", "", "HIGH_ENERGY"], {}, "high_energy"),
    ("GE MEDICAL SYSTEMS", ["DERIVED", "PRIMARY", "", "RECOMBINED"], {}, "recombined"),
    ("GE MEDICAL SYSTEMS", ["ORIGINAL", "PRIMARY"], {"AcquisitionDeviceProcessingCode": "GEMS_CESM_1"}, "recombined"),
    ("GE MEDICAL SYSTEMS", ["DERIVED", "SECONDARY", "", "LOW_ENER"], {"KVP": "28"}, "skip"),
    # DICOM standard: value 4 SUBTRACTION, value 5 LOW_ENERGY / HIGH_ENERGY, for any manufacturer
    ("ACME", ["ORIGINAL", "PRIMARY", "", "", "LOW_ENERGY"], {}, "le"),
    ("ACME", ["ORIGINAL", "PRIMARY", "", "", "HIGH_ENERGY"], {}, "high_energy"),
    ("ACME", ["DERIVED", "PRIMARY", "", "SUBTRACTION"], {}, "recombined"),
    ("ACME", ["DERIVED", "PRIMARY", "", "GENERATED_2D"], {}, "skip"),
    # Hologic and Siemens: the standard's tokens, also where they sit at another value number
    ("HOLOGIC, Inc.", ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"], {}, "le"),
    ("HOLOGIC, Inc.", ["DERIVED", "PRIMARY", "", "", "SUBTRACTION"], {}, "recombined"),
    ("Siemens Healthineers", ["ORIGINAL", "PRIMARY", "LOW_ENERGY"], {}, "le"),
    ("Siemens Healthineers", ["DERIVED", "PRIMARY", "", "", "RECOMBINED"], {}, "recombined"),
    # GE's own value-4 tokens do not apply to other makers ("GE" inside a word is not GE)
    ("AGFA-GEVAERT", ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"], {}, None),
    # kVp fallback for images without a vendor token
    ("ACME", ["ORIGINAL", "PRIMARY"], {"KVP": "28"}, "le"),
    ("ACME", ["ORIGINAL", "PRIMARY"], {"KVP": "49"}, "high_energy"),
    ("ACME", ["DERIVED", "PRIMARY"], {}, "recombined"),
    ("ACME", ["ORIGINAL", "PRIMARY"], {}, None),
    ("ACME", ["ORIGINAL", "PRIMARY"], {"KVP": "40"}, None),
])
def test_vendor_rules_classify_hand_built_images(manufacturer: str, image_type: list[str], tags: dict,
                                                  kind: str | None) -> None:
    got, why = dicom.classify(_tags(manufacturer, image_type, **tags))
    assert got == kind, why
    assert why


def test_the_rule_table_is_extensible_and_for_processing_images_are_skipped() -> None:
    ds = _tags("ACME", ["ORIGINAL", "PRIMARY"], SeriesDescription="le cesm")
    assert dicom.classify(ds)[0] is None
    rules = (dicom.KindRule("Acme", r"acme", "SeriesDescription", "LE CESM", dicom.LE), *dicom.KIND_RULES)
    assert dicom.classify(ds, rules) == ("le", "Acme rule: SeriesDescription is LE CESM")
    raw = _tags("GE MEDICAL SYSTEMS", ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"])
    raw.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2.1"  # For Processing
    assert dicom.classify(raw)[0] == "skip"


# ---- synth --format dicom --------------------------------------------------------------------------------------

def test_synth_dicom_writes_part10_files_of_the_jpeg_phantoms_pixels(dicom_raw: Path, jpeg_raw: Path) -> None:
    truth, jpeg_truth = _truth(dicom_raw), _truth(jpeg_raw)
    same = [c for c in truth.columns if c not in ("le_file", "des_file")]
    pd.testing.assert_frame_equal(truth[same], jpeg_truth[same])
    labels = pd.read_csv(dicom_raw / "labels.csv", dtype={"birads": str}).set_index(["patient_id", "laterality",
                                                                                      "view"])
    diffs = []
    for pair in _pairs(dicom_raw).reset_index().itertuples():
        le_bytes = (dicom_raw / pair.le_file).read_bytes()
        assert le_bytes[128:132] == b"DICM"
        le, des = pydicom.dcmread(dicom_raw / pair.le_file), pydicom.dcmread(dicom_raw / pair.des_file)
        for ds, height, width in ((le, pair.le_height, pair.le_width), (des, pair.des_height, pair.des_width)):
            assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == MG_PRESENTATION
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            assert (ds.Modality, ds.ImageLaterality, ds.ViewPosition) == ("MG", pair.side, pair.view)
            assert int(ds.PatientID) == pair.patient_id and (ds.Rows, ds.Columns) == (height, width)
            assert ds.BitsStored == 12 and ds.pixel_array.max() < 4096 and "WindowWidth" in ds
            assert "GE" in ds.Manufacturer
        assert le.StudyInstanceUID == des.StudyInstanceUID and le.SOPInstanceUID != des.SOPInstanceUID
        assert list(le.ImageType)[3] == "LOW_ENERGY" and list(des.ImageType)[:1] == ["DERIVED"]
        assert des.SourceImageSequence[0].ReferencedSOPInstanceUID == le.SOPInstanceUID
        jpeg = read_gray(jpeg_raw / LE_DIR / f"P{pair.patient_id}_{pair.side}_DM_{pair.view}.jpg")
        diffs.append(np.abs((le.pixel_array >> 4).astype(int) - jpeg).mean())  # JPEG error only
        row = labels.loc[(pair.patient_id, pair.side, pair.view)]
        assert (row.pathology, row.birads) == (pair.pathology, pair.birads)
    assert max(diffs) < 3.0


def test_synth_dicom_is_deterministic_per_patient(dicom_raw: Path, tmp_path: Path) -> None:
    one = write_dataset(SynthConfig(patients=1, seed=SEED, format="dicom"), tmp_path / "one").out
    files = sorted(p.relative_to(one) for p in (one / "DICOM").rglob("*") if p.is_file())
    assert files and all((one / f).read_bytes() == (dicom_raw / f).read_bytes() for f in files)
    other = write_dataset(SynthConfig(patients=1, seed=SEED + 1, format="dicom"), tmp_path / "other").out
    uids = {pydicom.dcmread(p).StudyInstanceUID for root in (one, other) for p in (root / "DICOM").rglob("IM0001*")}
    assert len(uids) == 2
    with pytest.raises(BadInputError, match="quirks"):
        SynthConfig(format="dicom", quirks=True)


def test_dicom_catalog_is_the_jpeg_catalog(dicom_raw: Path, jpeg_raw: Path) -> None:
    cfg = IngestConfig(crop_size=CROP)
    got, patients = dicom.build_dicom_catalog(dicom.find_dicom_layout(dicom_raw), cfg)
    want = build_catalog(find_layout(jpeg_raw), cfg)
    assert list(got.pairs.columns) == list(want.pairs.columns)
    assert got.pairs_seen == want.pairs_seen == _truth(dicom_raw)["pair_id"].nunique()
    assert patients == {pid: f"{pid:04d}" for pid in range(1, PATIENTS + 1)}

    def comparable(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.drop(columns=["le_path", "des_path", "le_file", "des_file"]).reset_index(drop=True)
        for key in ("le_regions", "des_regions"):  # "line" points into different files
            out[key] = [[{k: v for k, v in r.items() if k != "line"} for r in json.loads(s)] for s in out[key]]
        return out

    pd.testing.assert_frame_equal(comparable(got.pairs), comparable(want.pairs))
    files = got.pairs.set_index("pair_id")[["le_file", "des_file"]]
    truth = _pairs(dicom_raw).loc[files.index, ["le_file", "des_file"]]
    pd.testing.assert_frame_equal(files, truth)


def _write(root: Path, name: str, kind: str, patient: str, study: str, side: str, view: str, uid: str,
           source: str = "") -> None:
    ds = cesm_dataset(np.full((8, 8), 100, np.uint8), kind, patient_id=patient, age=50, side=side, view=view,
                      study_uid=study, series_uid=study + ".1", sop_uid=uid, series_number=1, instance_number=1,
                      source_uid=source)
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(root / name, enforce_file_format=True)


def test_retakes_pair_by_source_links_and_labels_need_a_study_when_ambiguous(tmp_path: Path) -> None:
    le, rec = dicom.LE, dicom.RECOMBINED
    _write(tmp_path, "a/1", le, "A12", "2.25.1", "L", "CC", "2.25.11")
    _write(tmp_path, "a/2", rec, "A12", "2.25.1", "L", "CC", "2.25.12", source="2.25.13")
    _write(tmp_path, "a/3", le, "A12", "2.25.1", "L", "CC", "2.25.13")  # a retake, linked crosswise
    _write(tmp_path, "a/4", rec, "A12", "2.25.1", "L", "CC", "2.25.14", source="2.25.11")
    _write(tmp_path, "a/later/5", le, "A12", "2.25.2", "L", "CC", "2.25.21")  # a second study, no links
    _write(tmp_path, "a/later/6", rec, "A12", "2.25.2", "L", "CC", "2.25.22")
    for name, kind in (("b/1", le), ("b/2", le), ("b/3", rec)):  # two LEs, one recombined, no link
        _write(tmp_path, name, kind, "B7", "2.25.3", "R", "MLO", f"2.25.3{name[-1]}")
    (tmp_path / "labels.csv").write_text(
        "Patient_ID,Laterality,View,Pathology,BIRADS,Study_UID,LE_Regions\n"
        "A12,L,CC,Normal,1,2.25.1,\n"
        "A12,left,CC,Normal,1,,\n"
        "A12,L,CC,Normal,1,2.25.1,\n"
        "B7,R,MLO,Maybe,1,,\n"
        'C1,R,CC,Benign,2,,"[{""name"": ""blob""}]"\n')
    catalog, patients = dicom.build_dicom_catalog(dicom.find_dicom_layout(tmp_path), IngestConfig())
    got = catalog.pairs.set_index("pair_id")[["le_file", "des_file"]].apply(tuple, axis=1).to_dict()
    assert got == {"P1_L_CC": ("a/1", "a/4"), "P1_L_CC_2": ("a/3", "a/2")}
    assert patients == {1: "A12"}
    why = {r.file: r.reason for r in catalog.rejected}
    assert all("ambiguous pairing: 2 LE and 1 recombined" in why[f"b/{i}"] for i in (1, 2, 3))
    later = next(r for r in catalog.rejected if r.item == "P1_L_CC_3")
    assert "has no study_uid but patient A12 has 2 studies" in later.reason
    assert "duplicate row (first at line 2)" in why["labels.csv line 4"]
    assert "expected one of ['Normal', 'Benign', 'Malignant']" in why["labels.csv line 5"]
    assert "malformed region in 'le_regions'" in why["labels.csv line 6"]
    assert catalog.pairs_seen == 3 + 3


# ---- ingest of a DICOM folder with bad files -------------------------------------------------------------------

def _edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def broken(dicom_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the DICOM phantom with one bad input of each kind; returns it and {what: pair_id or file}."""
    raw = tmp_path_factory.mktemp("broken") / "raw"
    shutil.copytree(dicom_raw, raw)
    pairs = _pairs(raw)
    ids = list(pairs.index)[::2]  # every other pair, so that good pairs of every class remain
    bad = dict(zip(["truncated", "no_pixels", "no_recombined", "no_le", "no_laterality", "no_label",
                    "undecodable"], ids))
    le, des = (lambda k: raw / pairs.loc[bad[k], "le_file"]), (lambda k: raw / pairs.loc[bad[k], "des_file"])
    data = le("truncated").read_bytes()
    le("truncated").write_bytes(data[: len(data) // 2])
    _edit(des("no_pixels"), PixelData=None)
    des("no_recombined").unlink()
    le("no_le").unlink()
    _edit(le("no_laterality"), ImageLaterality=None)
    _edit(le("undecodable"), Rows=pydicom.dcmread(le("undecodable")).Rows * 2)  # more rows than pixel bytes
    high = pydicom.dcmread(le("no_label"))  # an extra high-energy exposure of a good pair: skipped, not an error
    high.ImageType, high.KVP, high.SOPInstanceUID = ["ORIGINAL", "PRIMARY", "", "HIGH_ENERGY"], "49", "2.25.1"
    high.file_meta.MediaStorageSOPInstanceUID = "2.25.1"
    high.save_as(raw / "DICOM" / "he_exposure", enforce_file_format=True)
    unknown = pydicom.dcmread(le("no_label"))
    unknown.Manufacturer, unknown.ImageType, unknown.SOPInstanceUID = "ACME", ["ORIGINAL", "PRIMARY"], "2.25.2"
    del unknown.KVP
    unknown.save_as(raw / "DICOM" / "mystery.dcm", enforce_file_format=True)
    (raw / "DICOM" / "garbage").write_bytes(b"\x00" * 300)
    (raw / "DICOM" / "cut_header.dcm").write_bytes(data[:200])
    patient, side, view = int(pairs.loc[bad["no_label"], "patient_id"]), *pairs.loc[bad["no_label"], ["side", "view"]]
    with open(raw / "labels.csv", newline="") as fh:
        rows = [r for r in csv.reader(fh) if r[:3] != [str(patient), side, view]]
    with open(raw / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    files = {k: str(le(k).relative_to(raw)) for k in ("truncated", "no_recombined", "no_laterality", "undecodable")}
    files |= {k: str(des(k).relative_to(raw)) for k in ("no_pixels", "no_le")}
    return raw, {**bad, **{f"{k}_file": v for k, v in files.items()}}


@pytest.fixture(scope="module")
def ingested(ray_local, broken: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory):
    raw, _ = broken
    work = Workspace.at(tmp_path_factory.mktemp("work"))
    return work, ingest.run(IngestConfig(crop_size=CROP), work, raw)


@pytest.mark.ray
def test_bad_dicom_files_are_named_in_rejected_csv(ingested, broken: tuple[Path, dict[str, str]]) -> None:
    work, summary = ingested
    raw, bad = broken
    rejected = pd.read_csv(work.dataset.rejected)

    def reason(file: str) -> str:
        return " | ".join(rejected.loc[rejected["file"] == file, "reason"])

    assert "truncated file" in reason(bad["truncated_file"])
    assert "no pixel data" in reason(bad["no_pixels_file"])
    assert "LE image without its recombined" in reason(bad["no_recombined_file"])
    assert "recombined image without its LE" in reason(bad["no_le_file"])
    assert "missing pairing tag(s) ImageLaterality" in reason(bad["no_laterality_file"])
    assert "pixel data cannot be decoded" in reason(bad["undecodable_file"])
    assert "unknown image kind" in reason("DICOM/mystery.dcm")
    assert "not a DICOM Part-10 file" in reason("DICOM/garbage")
    assert "no Modality tag (truncated" in reason("DICOM/cut_header.dcm")
    assert "high-energy image, not used" in reason("DICOM/he_exposure")
    assert "no label row" in " | ".join(rejected.loc[rejected["item"] == bad["no_label"], "reason"])
    kinds = rejected.set_index("file")["kind"]
    assert kinds["DICOM/he_exposure"] == kinds["synthetic_truth.csv"] == "excluded"
    assert kinds[bad["truncated_file"]] == kinds["DICOM/garbage"] == kinds["DICOM/cut_header.dcm"] == "bad_input"
    undecodable = rejected[rejected["file"] == bad["undecodable_file"]].iloc[0]
    assert (undecodable["item"], undecodable["stage"]) == (bad["undecodable"], "process")
    truth = _pairs(raw)
    birads3 = {p for p, b in truth["birads"].items() if max(map(int, b.split("$"))) == 3}
    broken_pairs = {v for k, v in bad.items() if not k.endswith("_file")}
    ingested_pairs = set(pd.read_parquet(work.dataset.crops)["pair_id"])
    assert ingested_pairs == set(truth.index) - broken_pairs - birads3
    assert summary.pairs_ingested == len(ingested_pairs) and summary.rejected_bad_input >= 10
    with pytest.raises(UnreadableImage, match=bad["truncated_file"].split("/")[-1]):
        read_gray(raw / bad["truncated_file"])


@pytest.mark.ray
def test_dicom_ingest_matches_the_truth(ingested, broken: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    work, summary = ingested
    raw, _ = broken
    manifest = json.loads(work.dataset.manifest.read_text())
    assert manifest["input_format"] == "dicom" and set(manifest["inputs"]) == {"images", "labels"}
    assert manifest["dicom_patient_ids"] == {str(p): f"{p:04d}" for p in range(1, PATIENTS + 1)}
    truth, lesions = _pairs(raw), _truth(raw).dropna(subset=["lesion_index"])
    reg = pd.read_parquet(work.dataset.registration).set_index("pair_id")
    hits = (reg["tx"] == truth.loc[reg.index, "tx"]) & (reg["ty"] == truth.loc[reg.index, "ty"])
    assert hits.mean() >= 0.9
    crops = pd.read_parquet(work.dataset.crops).set_index("crop_id")
    malignant = (truth.loc[crops["pair_id"], "pathology"] == "Malignant").astype(int).to_numpy()
    np.testing.assert_array_equal(crops["label"].to_numpy(dtype=int), malignant)
    for c in crops[crops["source"] != "random"].itertuples():
        mine = lesions[lesions["pair_id"] == c.pair_id]
        assert np.hypot(mine.cx - c.centre_x, mine.cy - c.centre_y).min() <= max(6.0, 0.5 * mine.radius.max())
    checked = 0
    for row in pd.read_parquet(work.dataset.shards).itertuples():
        c, t = crops.loc[row.crop_id], truth.loc[row.pair_id]
        y0, x0 = int(c.origin_y), int(c.origin_x)
        le = pydicom.dcmread(raw / t.le_file).pixel_array >> 4  # the writer's 12-bit scale, undone by hand
        np.testing.assert_array_equal(decode_image(row.le, CROP, CROP), le[y0:y0 + CROP, x0:x0 + CROP])
        if (reg.loc[row.pair_id, "tx"], reg.loc[row.pair_id, "ty"]) == (t.tx, t.ty):
            des = pydicom.dcmread(raw / t.des_file).pixel_array >> 4
            want = des[y0 - t.ty:y0 - t.ty + CROP, x0 - t.tx:x0 - t.tx + CROP]
            np.testing.assert_array_equal(decode_image(row.des, CROP, CROP), want)
            checked += 1
    assert checked >= 0.9 * summary.crops > 0
    again = ingest.run(IngestConfig(crop_size=CROP), work, raw)
    assert again.skipped
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    before = dicom.input_fingerprints(dicom.find_dicom_layout(copy))
    (copy / "labels.csv").write_text((copy / "labels.csv").read_text() + "\n")
    after = dicom.input_fingerprints(dicom.find_dicom_layout(copy))
    assert after["labels"] != before["labels"] and after["images"] == before["images"]


def test_a_folder_with_neither_layout_names_both(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    with pytest.raises(BadInputError, match=r"image folder is missing \(a DICOM dataset instead needs labels.csv"):
        ingest.run(IngestConfig(), Workspace.at(tmp_path / "w"), tmp_path / "raw")
    assert not dicom.is_dicom_dataset(tmp_path / "raw")
    (tmp_path / "raw" / "labels.csv").write_text("patient_id,laterality,view\n")
    assert dicom.is_dicom_dataset(tmp_path / "raw")
    with pytest.raises(BadInputError, match="labels.csv: labels CSV lacks column"):
        dicom.read_labels(tmp_path / "raw" / "labels.csv")
    (tmp_path / "raw" / LE_DIR).mkdir()  # a CDD-CESM folder stays CDD-CESM even with a labels file in it
    (tmp_path / "raw" / DES_DIR).mkdir()
    assert not dicom.is_dicom_dataset(tmp_path / "raw")
