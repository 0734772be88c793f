"""`generators apply`: outputs per input kind, derived DICOM tags, provenance hashes, skips, overwrite rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from typer.testing import CliRunner

from vdes_tune.cli import app
from vdes_tune.config import GeneratorConfig, config_hash, from_yaml
from vdes_tune.errors import BadInputError
from vdes_tune.inference.apply import apply_generator, resolve_tiling
from vdes_tune.inference.generator import load_generator
from vdes_tune.inference.tiling import Tiling
from vdes_tune.training.generators import build_generator
from vdes_tune.workspace import Workspace

from .conftest import save_generator

MG = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth 8-bit gray image (a breast-like gradient with texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 200 * np.exp(-((xx / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2) + rng.normal(0, 8, (h, w))
    return np.clip(base, 0, 255).astype(np.uint8)


def _write_dicom(path: Path, image: np.ndarray) -> Dataset:
    """An MG For Presentation file whose VOI window gives back the 8-bit `image`: 12-bit values v * 16,
    LINEAR centre 2040.5, width 4081 (maps x to x * 255 / 4080)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.TransferSyntaxUID = MG, ExplicitVRLittleEndian
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "DOE^JANE", "P0042", "19700101", "F"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240102", "101500", "ACC1", "7"
    ds.Modality, ds.ImageLaterality, ds.ViewPosition, ds.BodyPartExamined = "MG", "L", "MLO", "BREAST"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ImagerPixelSpacing = ["0.1", "0.1"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "2040.5", "4081"
    ds.PixelData = (image.astype("<u2") << 4).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


def _reference(work: Path, name: str, le: np.ndarray) -> np.ndarray:
    """The generator on the whole 8-bit LE: reflect-padded to multiples of 4 (numpy), PyTorch, cropped."""
    cfg = from_yaml(GeneratorConfig, work / "generators" / name / "config.yaml")
    net = build_generator(cfg).eval()
    net.load_state_dict(torch.load(work / "generators" / name / "generator.pt", weights_only=True))
    h, w = le.shape
    padded = np.pad(le.astype(np.float32) / 255, ((0, -h % 4), (0, -w % 4)), mode="reflect")
    with torch.no_grad():
        return net(torch.from_numpy(padded)[None, None])[0, 0, :h, :w].numpy()


def test_apply_writes_pngs_dicom_and_provenance(work: Path, tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    (scans / "a").mkdir(parents=True)
    (scans / "b").mkdir()
    le16 = (_image(90, 70, 1).astype(np.uint16) << 8) + np.uint16(77)  # 16-bit: ingest keeps the top byte
    cv2.imwrite(str(scans / "a" / "le16.png"), le16)
    le_dcm = _image(100, 84, 2)
    src = _write_dicom(scans / "b" / "IM0001", le_dcm)  # DICOM exports often have no suffix
    cv2.imwrite(str(scans / "photo.jpg"), cv2.cvtColor(_image(60, 64, 3), cv2.COLOR_GRAY2BGR))
    (scans / "notes.txt").write_text("not an image")
    (scans / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "out"

    result = CliRunner().invoke(app, ["generators", "apply", "unet", str(scans), "--out", str(out),
                                      "--work", str(work), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"skipped {scans / 'notes.txt'}: unsupported format" in result.stderr
    assert f"skipped {scans / 'broken.png'}: not a decodable image" in result.stderr

    png16 = cv2.imread(str(out / "a" / "le16.png"), cv2.IMREAD_UNCHANGED)
    assert png16.dtype == np.uint16 and png16.shape == (90, 70)
    want16 = np.rint(_reference(work, "unet", (le16 >> 8).astype(np.uint8)) * 65535)
    assert np.abs(png16.astype(float) - want16).max() <= 1
    photo = cv2.imread(str(out / "photo.png"), cv2.IMREAD_UNCHANGED)
    assert photo.dtype == np.uint8 and photo.shape == (60, 64)

    # The DICOM input: a 16-bit PNG and a derived DICOM holding the same pixels.
    png_dcm = cv2.imread(str(out / "b" / "IM0001.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(png_dcm.astype(float) - np.rint(_reference(work, "unet", le_dcm) * 65535)).max() <= 1
    ds = pydicom.dcmread(out / "b" / "IM0001.dcm")
    for tag in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "AccessionNumber", "ImageLaterality", "ViewPosition", "ImagerPixelSpacing"):
        assert ds[tag].value == src[tag].value, tag
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    weights_sha = _sha(work / "generators" / "unet" / "generator.pt")
    assert "'unet'" in ds.DerivationDescription and weights_sha in ds.DerivationDescription
    assert ds.SeriesDescription == "virtual DES (vdes-tune unet)"
    ref = ds.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (MG, src.SOPInstanceUID)
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == \
        (100, 84, 16, 16, 15, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert np.array_equal(ds.pixel_array, png_dcm)

    prov = json.loads((out / "provenance.json").read_text())
    (run,) = prov["runs"]
    gen = run["generator"]
    assert gen["weights_sha256"] == weights_sha
    assert gen["config_hash"] == config_hash(from_yaml(GeneratorConfig, work / "generators" / "unet" / "config.yaml"))
    assert run["settings"]["device"] == "cpu" and run["vdes_tune_version"]
    records = {Path(r["input"]).name: r for r in run["outputs"]}
    assert set(records) == {"le16.png", "IM0001", "photo.jpg"}
    for rec in run["outputs"]:
        assert rec["input_sha256"] == _sha(Path(rec["input"]))
        for o in rec["outputs"]:
            assert o["sha256"] == _sha(out / o["path"])
    assert [o["path"] for o in records["IM0001"]["outputs"]] == ["b/IM0001.png", "b/IM0001.dcm"]
    assert (records["le16.png"]["input_bits"], records["photo.jpg"]["input_bits"]) == (16, 8)
    skipped = {Path(s["input"]).name: s["reason"] for s in run["skipped"]}
    assert skipped.keys() == {"notes.txt", "broken.png"}
    assert (work / "generators" / "unet" / "MODEL_CARD.md").is_file()  # an older folder gets its card


def test_apply_refuses_to_overwrite_and_keeps_one_record_per_output(work: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "one.png", tmp_path / "two.png"
    cv2.imwrite(str(first), _image(40, 48, 4))
    cv2.imwrite(str(second), _image(40, 48, 5))
    ws, out = Workspace.at(work), tmp_path / "out"
    apply_generator(ws, "unet", [first], out, progress=False)
    before = (out / "one.png").read_bytes()
    with pytest.raises(BadInputError, match="--overwrite"):
        apply_generator(ws, "unet", [first, second], out, progress=False)
    assert not (out / "two.png").exists() and (out / "one.png").read_bytes() == before
    apply_generator(ws, "unet", [second], out, progress=False)
    apply_generator(ws, "cyclegan", [first], out, overwrite=True, progress=False)
    runs = json.loads((out / "provenance.json").read_text())["runs"]
    owners = {o["path"]: run["generator"]["name"] for run in runs for r in run["outputs"] for o in r["outputs"]}
    assert owners == {"one.png": "cyclegan", "two.png": "unet"}
    assert sum(len(r["outputs"]) for r in runs) == 2  # the first run's record of one.png was taken over


def test_nothing_written_is_an_error_with_the_reasons_recorded(work: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\0" * 10)  # a JPEG that stops after its marker
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((5, 9), np.uint8))  # the U-Net 4/3 needs 8 px a side
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generators", "apply", "unet", str(bad), str(tmp_path / "missing.png"),
                                      str(tmp_path / "tiny.png"), "--out", str(out), "--work", str(work), "--quiet"])
    assert result.exit_code != 0 and "nothing written" in str(result.exception)
    skipped = json.loads((out / "provenance.json").read_text())["runs"][0]["skipped"]
    assert [Path(s["input"]).name for s in skipped] == ["missing.png", "bad.jpg", "tiny.png"]
    assert "no such file" in skipped[0]["reason"] and "decodable" in skipped[1]["reason"]
    assert "too small (9x5 px" in skipped[2]["reason"]


def test_dicom_folders_get_only_their_low_energy_images_translated(work: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    for name, image_type in (("low_energy", ["ORIGINAL", "PRIMARY", "", "LOW_ENERGY"]),
                             ("recombined", ["DERIVED", "PRIMARY", "", "RECOMBINED"])):  # GE SenoBright's tags
        ds = _write_dicom(study / f"{name}.dcm", _image(40, 36, len(name)))
        ds.Manufacturer, ds.ImageType = "GE MEDICAL SYSTEMS", image_type
        ds.save_as(study / f"{name}.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generators", "apply", "unet", str(study), "--out", str(out),
                                      "--work", str(work), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["low_energy.dcm", "low_energy.png", "provenance.json"]
    (skip,) = json.loads((out / "provenance.json").read_text())["runs"][0]["skipped"]
    assert Path(skip["input"]).name == "recombined.dcm" and "not a low-energy image (recombined" in skip["reason"]
    # Its own output is a derived secondary image: applying again to the output folder translates nothing.
    again = CliRunner().invoke(app, ["generators", "apply", "unet", str(out / "low_energy.dcm"), "--out",
                                     str(tmp_path / "again"), "--work", str(work), "--quiet"])
    assert again.exit_code != 0 and "nothing written" in str(again.exception)


def test_cyclegan_runs_on_tiles_of_its_training_crop(work: Path, tmp_path: Path) -> None:
    ws = Workspace.at(work)
    gen = load_generator(ws, "cyclegan")
    assert gen.per_image_norm and resolve_tiling(gen, None, None) == Tiling(64, 16, 4)
    save_generator(work, "cg-old", "cyclegan", crop_size=None)  # manifest without a crop, no dataset
    assert resolve_tiling(load_generator(ws, "cg-old"), None, None) == Tiling(224, 56, 4)
    unet = load_generator(ws, "unet")
    assert resolve_tiling(unet, 100, None) == Tiling(100, 25, 4)  # asked for: always tiles
    # By default, whole images up to one batch of 1024-px tiles (no more memory, no seams).
    assert resolve_tiling(unet, None, None, batch_size=2) == Tiling(1024, 256, 4, 2 * 1024 ** 2)
    with pytest.raises(BadInputError, match="--overlap"):
        resolve_tiling(gen, 64, 40)

    le = _image(150, 100, 6)
    cv2.imwrite(str(tmp_path / "le.png"), le)
    summary = apply_generator(ws, "cyclegan", [tmp_path / "le.png"], tmp_path / "out", progress=False)
    assert (summary.tile, summary.overlap) == (64, 16)
    record = json.loads((tmp_path / "out" / "provenance.json").read_text())["runs"][0]["outputs"][0]
    assert record["tiles"] == 3 * 2  # padded to 152 x 100: tiles start at 0, 44, 88 down and 0, 36 across
    got = cv2.imread(str(tmp_path / "out" / "le.png"), cv2.IMREAD_UNCHANGED).astype(float)
    with torch.no_grad():
        first_tile = gen.network(torch.from_numpy(le[:64, :64] / 255).float()[None, None])[0, 0].numpy()
    # Where only the first tile reaches, the output is that tile's own (InstanceNorm over 64 x 64 px).
    assert np.abs(got[:40, :40] - np.rint(first_tile[:40, :40] * 255)).max() <= 1
    card = (work / "generators" / "cyclegan" / "MODEL_CARD.md").read_text()
    assert "InstanceNorm" in card and "64 px, overlap 16 px" in card


@pytest.mark.gpu
def test_cuda_with_bf16_autocast_matches_the_cpu(work: Path, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "le.png"), _image(300, 200, 7))
    ws = Workspace.at(work)
    apply_generator(ws, "unet", [tmp_path / "le.png"], tmp_path / "cpu", device="cpu", progress=False)
    summary = apply_generator(ws, "unet", [tmp_path / "le.png"], tmp_path / "gpu", device="cuda", tile=128,
                              progress=False)
    assert summary.device.startswith("cuda")
    cpu, gpu = (cv2.imread(str(tmp_path / d / "le.png"), cv2.IMREAD_UNCHANGED).astype(int) for d in ("cpu", "gpu"))
    assert np.abs(cpu - gpu).max() <= 6 and np.abs(cpu - gpu).mean() <= 1  # bf16 rounding, 8-bit output
