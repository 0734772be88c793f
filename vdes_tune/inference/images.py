"""Inputs and outputs of `generators apply`: LE files to the 8-bit image ingest would see, virtual DES to files.

An input becomes exactly what a generator's training crops were made of: `read_gray` (ingest's decoder: colour
to gray, 16-bit >> 8) for JPEG and PNG, the DICOM module's `to_uint8` (the file's VOI window, else its stored
range) for DICOM. Outputs are written through a temporary name and renamed, so no reader sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vdes_tune.data.pairs import read_gray
from vdes_tune.errors import UnreadableImage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
UNSUPPORTED = "unsupported format (not a JPEG, PNG or DICOM file)"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # SC Image Storage: a derived image with its own equipment
# Copied from the LE so the virtual DES files under the same patient, study, breast and view.
COPIED_TAGS = (
    "SpecificCharacterSet",
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "OtherPatientIDsSequence", "PatientIdentityRemoved", "DeidentificationMethod",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "StudyDescription",
    "Modality", "Laterality", "ImageLaterality", "ViewPosition", "ViewCodeSequence", "BodyPartExamined",
    "PatientOrientation", "InstanceNumber", "LossyImageCompression",
    # The output lies on the input's pixel grid, so its spacing is the input's.
    "PixelSpacing", "ImagerPixelSpacing", "PixelSpacingCalibrationType",
)
# Type 2 attributes of the Secondary Capture IOD: present, if empty, when the source lacks them.
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber", "InstanceNumber", "PatientOrientation")


@dataclass
class InputImage:
    """One decoded LE input."""

    path: Path
    format: str  # "jpeg", "png" or "dicom"
    bits: int  # bit depth of the stored pixels (8 or 16; DICOM: BitsStored)
    pixels: np.ndarray  # 2-D uint8, as ingest would see the file
    sha256: str
    dataset: Any = None  # the DICOM header, for the derived DICOM

    @property
    def wide_output(self) -> bool:
        """Whether the virtual DES is written with 16 bits (16-bit or DICOM input)."""
        return self.format == "dicom" or self.bits > 8


def sniff(head: bytes) -> str | None:
    """The format of a file from its first 132 bytes: png, jpeg, dicom, or None for anything else."""
    from vdes_tune.data.dicom import is_dicom_bytes

    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if is_dicom_bytes(head):
        return "dicom"
    return None


def read_input(path: Path) -> InputImage:
    """Decode one LE file; UnreadableImage (naming the file) when it is not a usable JPEG, PNG or DICOM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(path, f"cannot read file: {exc.strerror or exc}") from exc
    kind = sniff(data[:132])
    if kind is None:
        raise UnreadableImage(path, UNSUPPORTED)
    digest = hashlib.sha256(data).hexdigest()
    if kind == "dicom":
        from vdes_tune.data.dicom import LE, classify, read_dataset, to_uint8

        ds = read_dataset(io.BytesIO(data), path)
        ds.filename = str(path)
        # A CESM study folder also holds recombined and high-energy images (and our own derived outputs);
        # the generator only means something on LE. An image no rule knows (plain FFDM) is still applied.
        image_kind, why = classify(ds)
        if image_kind is not None and image_kind != LE:
            raise UnreadableImage(path, f"not a low-energy image ({image_kind.replace('_', '-')}: {why})")
        try:
            pixels = to_uint8(ds)
        except ValueError as exc:  # a window the standard does not allow
            raise UnreadableImage(path, f"cannot window to 8 bits: {exc}") from exc
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
        if "PixelData" in ds:
            del ds.PixelData  # the header is what the output needs; the pixels are in `pixels`
        return InputImage(path, kind, bits, pixels, digest, ds)
    # PNG: bit depth is byte 24 of the IHDR chunk, which the format puts first.
    bits = data[24] if kind == "png" and len(data) > 24 else 8
    return InputImage(path, kind, bits, read_gray(path), digest)


def quantise(vdes: np.ndarray, bits: int) -> np.ndarray:
    """A virtual DES in [0, 1] as uint8 (like the stored crops) or uint16 (full 0..65535 range)."""
    top, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    return np.rint(np.clip(vdes, 0.0, 1.0) * top).astype(dtype)


def png_bytes(pixels: np.ndarray, name: str | Path) -> bytes:
    """Lossless PNG of a 2-D uint8 or uint16 image."""
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"{name}: PNG encoding failed")
    return buf.tobytes()


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file via a temporary sibling and rename, so it appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def derived_dicom(source: InputImage, pixels: np.ndarray, description: str, series_description: str,
                  entropy: list[str]) -> bytes:
    """A Secondary Capture DICOM of 16-bit `pixels` derived from a DICOM input (tags copied, new UIDs).

    UIDs derive from `entropy` (generator, settings) and the source's UIDs: the same generator applied to one
    source series gives one new series, and a rerun with the same settings the same instances.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from vdes_tune import __version__

    src = source.dataset
    ds = Dataset()
    for keyword in COPIED_TAGS:
        if keyword in src:
            ds[keyword] = src[keyword]
    for keyword in TYPE_2:
        if keyword not in ds:
            setattr(ds, keyword, None)
    src_series = str(src.get("SeriesInstanceUID", "")) or source.sha256
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", src_series])
    src_sop = str(src.get("SOPInstanceUID", "")) or source.sha256
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", src_series, *entropy])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["instance", src_sop, *entropy])
    ds.Modality = src.get("Modality", "OT") or "OT"
    ds.SeriesNumber = None
    ds.SeriesDescription = series_description[:64]  # LO: at most 64 characters
    ds.Manufacturer = "vdes-tune"
    ds.SoftwareVersions = __version__
    ds.ConversionType = "SYN"  # synthetic image (SC Equipment module)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = description[:1024]
    ref = Dataset()
    ref.ReferencedSOPClassUID = src.get("SOPClassUID", "")
    ref.ReferencedSOPInstanceUID = src_sop
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator = "121322", "DCM"
    purpose.CodeMeaning = "Source image for image processing operation"
    ref.PurposeOfReferenceCodeSequence = [purpose]
    ds.SourceImageSequence = [ref]
    ds.BurnedInAnnotation = "NO"
    # Image Pixel module of what is written: one sample, 16 bits unsigned, brighter = more enhancement.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
