"""DICOM pixels to the pipeline's 8-bit image: reading a Part-10 file, modality and VOI LUTs, windowing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut

from vdes_tune.errors import UnreadableImage

DICOM_MAGIC = b"DICM"  # Part-10 files carry it after a 128-byte preamble
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
DICOMDIR_SOP = "1.2.840.10008.1.3.10"


def is_dicom_bytes(head: bytes) -> bool:
    """Whether the first bytes of a file are a DICOM Part-10 header."""
    return len(head) >= 132 and head[128:132] == DICOM_MAGIC


def is_dicom_file(path: str | Path) -> bool:
    """Whether a local file starts with a DICOM Part-10 header (a missing or unreadable file is not)."""
    try:
        with open(path, "rb") as f:
            return is_dicom_bytes(f.read(132))
    except OSError:
        return False


def read_dataset(source: str | Path | BinaryIO, name: str | Path | None = None,
                 defer_size: int | None = None) -> pydicom.Dataset:
    """Parse a Part-10 file; UnreadableImage names the file when it is not DICOM or cannot be parsed."""
    name = name if name is not None else source
    try:
        return pydicom.dcmread(source, defer_size=defer_size)
    except InvalidDicomError as exc:
        raise UnreadableImage(name, f"not a DICOM Part-10 file ({exc})") from exc
    except OSError as exc:
        raise UnreadableImage(name, f"cannot read file: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on a truncated or garbled header
        raise UnreadableImage(name, f"corrupt DICOM header ({type(exc).__name__}: {exc})") from exc


def _dataset(source: str | Path | pydicom.Dataset) -> tuple[pydicom.Dataset, str]:
    if isinstance(source, pydicom.Dataset):
        return source, str(getattr(source, "filename", None) or "<dataset>")
    return read_dataset(source), str(source)


def _stored_range(ds: pydicom.Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def stored_value_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """Lowest and highest value the stored bit range can take after the Modality LUT / rescale."""
    lo, hi = _stored_range(ds)
    probe = np.array([lo, hi], dtype=np.int64)  # a rescale is linear: its ends suffice
    if "ModalityLUTSequence" in ds and hi - lo <= 1 << 16:  # a LUT need not be monotonic: look at every entry
        probe = np.arange(lo, hi + 1, dtype=np.int64)
    mapped = np.asarray(apply_modality_lut(probe, ds), dtype=np.float64)
    return float(mapped.min()), float(mapped.max())


def _is_monochrome1(ds: pydicom.Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def _pixels(ds: pydicom.Dataset, name: str) -> np.ndarray:
    if "PixelData" not in ds:
        raise UnreadableImage(name, "no pixel data (PixelData element missing)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise UnreadableImage(name, f"multi-frame image ({frames} frames); one 2-D frame per file is expected")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise UnreadableImage(name, f"{samples} samples per pixel; a grayscale image is expected")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # truncated data, unknown transfer syntax, missing decoder, bad attributes
        raise UnreadableImage(name, f"pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
    if stored.ndim != 2:
        raise UnreadableImage(name, f"pixel data has shape {stored.shape}; a 2-D image is expected")
    return stored


def read_pixels(source: str | Path | pydicom.Dataset) -> np.ndarray:
    """2-D float64 pixels after the Modality LUT / rescale, MONOCHROME1 inverted so brighter = more attenuation.

    The inversion mirrors each value inside the rescaled stored bit range (``lo + hi - v``), so the result
    keeps the units and the range of the stored data.
    """
    ds, name = _dataset(source)
    stored = _pixels(ds, name)
    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:  # malformed RescaleSlope/Intercept or Modality LUT Sequence
        raise UnreadableImage(name, f"bad Modality LUT / rescale attributes ({exc})") from exc
    if _is_monochrome1(ds):
        lo, hi = stored_value_range(ds)
        values = (lo + hi) - values
    return values


def _first_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        return float(value[0]) if len(value) else None
    return float(value)


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID) onto 0..255, as float."""
    function = (function or "LINEAR").strip().upper()
    if width <= 0:
        raise ValueError(f"window width {width} must be positive")
    if function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0) * 255.0
    if width < 1:
        raise ValueError(f"window width {width} is below 1, which LINEAR does not allow")
    if width == 1:  # the standard's degenerate case: a threshold at the centre
        return np.where(values > center - 0.5, 255.0, 0.0)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0) * 255.0


def to_uint8(source: str | Path | pydicom.Dataset | np.ndarray, center: float | None = None,
             width: float | None = None, function: str = "LINEAR",
             value_range: tuple[float, float] | None = None) -> np.ndarray:
    """The 8-bit image the pipeline works on (brighter = more attenuation) from a DICOM file, dataset or array.

    For a file or dataset the window is the first Window Center / Window Width pair in it, with its VOI LUT
    Function, when present: the display the vendor chose for reading, which is the nearest to how 8-bit
    JPEG datasets such as CDD-CESM were exported. For MONOCHROME1 the centre is mirrored like the pixels (see
    read_pixels). Without window tags the whole stored bit range (BitsStored, through the rescale) maps
    linearly onto 0..255: a fixed mapping, so the images of one study keep their relative brightness, which a
    per-image min-max would not. A VOI LUT Sequence is not applied. Explicit ``center``/``width`` override the
    tags. For a plain array pass ``center``/``width`` or ``value_range``; with neither, its own min..max is used.
    """
    ds: pydicom.Dataset | None = None
    if isinstance(source, np.ndarray):
        values = np.asarray(source, dtype=np.float64)
    else:
        ds, name = _dataset(source)
        values = read_pixels(ds)
    if ds is not None and center is None and width is None:
        try:
            center, width = _first_number(ds.get("WindowCenter")), _first_number(ds.get("WindowWidth"))
        except (TypeError, ValueError) as exc:
            raise UnreadableImage(name, f"unreadable Window Center/Width ({exc})") from exc
        function = str(ds.get("VOILUTFunction", "") or "LINEAR")
        if center is None or width is None or width <= 0:
            center = width = None
        elif _is_monochrome1(ds):
            lo, hi = stored_value_range(ds)
            center = (lo + hi) - center
    if center is not None and width is not None:
        out = window(values, float(center), float(width), function)
    else:
        if value_range is None:
            value_range = stored_value_range(ds) if ds is not None else (float(values.min()), float(values.max()))
        lo, hi = value_range
        out = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0) * 255.0
    return np.rint(out).astype(np.uint8)


def decode_uint8(data: bytes, name: str | Path) -> np.ndarray:
    """The bytes of a DICOM file to the pipeline's 8-bit image; UnreadableImage names the file."""
    ds = read_dataset(io.BytesIO(data), name)
    ds.filename = str(name)
    try:
        return to_uint8(ds)
    except UnreadableImage:
        raise
    except (ValueError, TypeError) as exc:  # e.g. a window width the VOI function does not allow
        raise UnreadableImage(name, f"cannot map to 8 bits: {exc}") from exc
