"""Which CESM image a DICOM file is (low energy, recombined, high energy, or to skip), by tag rules per vendor.

The rules are data (KIND_RULES); docs/ingest.md, section "DICOM input", documents them and the evidence
behind each vendor's convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pydicom
from pydicom.multival import MultiValue

from vdes_tune.data.dicom.pixels import MG_FOR_PROCESSING

LE, RECOMBINED, HIGH_ENERGY, SKIP = "le", "recombined", "high_energy", "skip"
LE_KVP = (25.0, 35.0)  # low-energy CESM exposures: about 26-34 kVp
HE_KVP = (44.0, 50.0)  # high-energy CESM exposures: about 45-49 kVp


@dataclass(frozen=True)
class KindRule:
    """One row of the classification table: an image of a matching manufacturer whose `attribute` holds `value`
    (as value number `value_number`, counted from 1 as DICOM does; as any value when None) is of `kind`."""

    vendor: str  # label for messages and the docs' table
    manufacturer: str  # regex searched (case-insensitive) in Manufacturer (0008,0070); "" matches every vendor
    attribute: str  # DICOM keyword
    value: str  # compared case-insensitively with each value, stripped
    kind: str  # LE, RECOMBINED, HIGH_ENERGY or SKIP
    value_number: int | None = None


# First match wins. Extend by passing your own tuple to classify()/build_dicom_catalog(), e.g.
# (KindRule("Acme", r"acme", "SeriesDescription", "LE CESM", LE), *KIND_RULES).
KIND_RULES: tuple[KindRule, ...] = (
    KindRule("any", "", "SOPClassUID", MG_FOR_PROCESSING, SKIP),  # raw detector data; ingest reads For Presentation
    KindRule("any", "", "ImageType", "SECONDARY", SKIP, 2),  # derived copies, e.g. GE's DERIVED\SECONDARY\\LOW_ENER
    KindRule("any", "", "ImageType", "GENERATED_2D", SKIP, 4),  # synthetic 2D from tomosynthesis
    KindRule("GE SenoBright", r"\bGE\b", "ImageType", "LOW_ENERGY", LE, 4),
    KindRule("GE SenoBright", r"\bGE\b", "ImageType", "HIGH_ENERGY", HIGH_ENERGY, 4),
    KindRule("GE SenoBright", r"\bGE\b", "ImageType", "RECOMBINED", RECOMBINED, 4),
    KindRule("GE SenoBright", r"\bGE\b", "AcquisitionDeviceProcessingCode", "GEMS_CESM_1", RECOMBINED),
    KindRule("DICOM standard", "", "ImageType", "LOW_ENERGY", LE, 5),
    KindRule("DICOM standard", "", "ImageType", "HIGH_ENERGY", HIGH_ENERGY, 5),
    KindRule("DICOM standard", "", "ImageType", "SUBTRACTION", RECOMBINED, 4),
    KindRule("DICOM standard", "", "ImageType", "ADDITION", SKIP, 4),
    KindRule("Hologic I-View", r"hologic", "ImageType", "LOW_ENERGY", LE),
    KindRule("Hologic I-View", r"hologic", "ImageType", "HIGH_ENERGY", HIGH_ENERGY),
    KindRule("Hologic I-View", r"hologic", "ImageType", "SUBTRACTION", RECOMBINED),
    KindRule("Siemens TiCEM", r"siemens", "ImageType", "LOW_ENERGY", LE),
    KindRule("Siemens TiCEM", r"siemens", "ImageType", "HIGH_ENERGY", HIGH_ENERGY),
    KindRule("Siemens TiCEM", r"siemens", "ImageType", "SUBTRACTION", RECOMBINED),
    KindRule("Siemens TiCEM", r"siemens", "ImageType", "RECOMBINED", RECOMBINED),
)


def _values(ds: pydicom.Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    return [str(v).strip().upper() for v in items]


def _in(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def classify(ds: pydicom.Dataset, rules: tuple[KindRule, ...] = KIND_RULES) -> tuple[str | None, str]:
    """(kind, why) of one image by its tags: the first matching rule, else the kVp fallback; (None, why) if unknown."""
    manufacturer = str(ds.get("Manufacturer", "") or "")
    for rule in rules:
        if rule.manufacturer and not re.search(rule.manufacturer, manufacturer, re.IGNORECASE):
            continue
        values = _values(ds, rule.attribute)
        want = rule.value.strip().upper()
        n = rule.value_number
        hit = want in values if n is None else (len(values) >= n and values[n - 1] == want)
        if hit:
            where = "" if n is None else f" value {n}"
            return rule.kind, f"{rule.vendor} rule: {rule.attribute}{where} is {rule.value}"
    image_type = _values(ds, "ImageType")
    try:
        kvp = float(ds.KVP) if ds.get("KVP") not in (None, "") else None
    except (TypeError, ValueError):
        kvp = None
    if image_type[:1] == ["DERIVED"]:
        return RECOMBINED, "fallback: a DERIVED mammogram without a vendor token is taken as recombined"
    if image_type[:1] == ["ORIGINAL"] and _in(kvp, LE_KVP):
        return LE, f"fallback: ORIGINAL image at {kvp:g} kVp (low-energy range {LE_KVP[0]:g}-{LE_KVP[1]:g})"
    if image_type[:1] == ["ORIGINAL"] and _in(kvp, HE_KVP):
        return HIGH_ENERGY, f"fallback: ORIGINAL image at {kvp:g} kVp (high-energy range)"
    shown = "\\".join(image_type) or "(none)"
    return None, (f"unknown image kind: no rule matches ImageType {shown}, "
                  f"Manufacturer {manufacturer or '(none)'!r}, KVP {kvp if kvp is not None else '(none)'}")
