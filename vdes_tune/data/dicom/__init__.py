"""DICOM input, split by job: `pixels` (a Part-10 file to the pipeline's 8-bit image), `kinds` (which CESM
image a file is, by tag rules per vendor: KIND_RULES, documented in docs/ingest.md, "DICOM input") and
`catalog` (a CESM DICOM folder plus its labels CSV as the catalog ingest reads). The names below are the
package's public ones, importable from `vdes_tune.data.dicom` as before the split."""

from vdes_tune.data.dicom.catalog import (LABEL_COLUMNS, LABELS_NAME, DicomImage, DicomLayout, LabelRow,
                                          build_dicom_catalog, find_dicom_layout, find_labels, input_fingerprints,
                                          is_dicom_dataset, read_image, read_labels)
from vdes_tune.data.dicom.kinds import HIGH_ENERGY, KIND_RULES, LE, RECOMBINED, SKIP, KindRule, classify
from vdes_tune.data.dicom.pixels import (DICOM_MAGIC, MG_FOR_PRESENTATION, MG_FOR_PROCESSING, decode_uint8,
                                         is_dicom_bytes, is_dicom_file, read_dataset, read_pixels,
                                         stored_value_range, to_uint8, window)

__all__ = ["LABEL_COLUMNS", "LABELS_NAME", "DicomImage", "DicomLayout", "LabelRow", "build_dicom_catalog",
           "find_dicom_layout", "find_labels", "input_fingerprints", "is_dicom_dataset", "read_image", "read_labels",
           "HIGH_ENERGY", "KIND_RULES", "LE", "RECOMBINED", "SKIP", "KindRule", "classify", "DICOM_MAGIC",
           "MG_FOR_PRESENTATION", "MG_FOR_PROCESSING", "decode_uint8", "is_dicom_bytes", "is_dicom_file",
           "read_dataset", "read_pixels", "stored_value_range", "to_uint8", "window"]
