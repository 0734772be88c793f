"""Per-pair processing: what is bad input, what the crop rules exclude, and crops inside the overlap."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from vdes_tune.config import IngestConfig
from vdes_tune.data.pairs import decode_image, process_pair, read_gray


def _pair(tmp_path: Path, le: np.ndarray, des: np.ndarray, pathology: str = "Normal",
          le_regions: list | None = None) -> dict:
    cv2.imwrite(str(tmp_path / "le.jpg"), le)
    cv2.imwrite(str(tmp_path / "des.png"), des)  # lossless, so pixels can be compared exactly
    return {"pair_id": "P1_L_CC", "patient_id": 1, "le_path": str(tmp_path / "le.jpg"),
            "des_path": str(tmp_path / "des.png"), "le_file": "le.jpg", "des_file": "des.png",
            "pathology": pathology, "label": int(pathology == "Malignant"),
            "le_regions": json.dumps(le_regions or []), "des_regions": "[]"}


def _breast(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.uint8)
    cv2.ellipse(img, (0, h // 2), (int(w * 0.9), int(h * 0.45)), 0, -90, 90, 120, -1)
    tex = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), 3) * 200
    return np.where(img > 0, np.clip(img + tex, 1, 255), 0).astype(np.uint8)


def test_normal_pair_without_a_tissue_window_is_excluded_not_bad_input(tmp_path: Path) -> None:
    tiny = np.zeros((300, 300), np.uint8)
    cv2.circle(tiny, (20, 150), 30, 150, -1)  # far too little tissue for a 224 crop
    result = process_pair(_pair(tmp_path, tiny, tiny), IngestConfig())
    assert result.crops == [] and result.error_kind == "excluded" and "breast tissue" in result.error


def test_corrupt_des_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    row = _pair(tmp_path, _breast(300, 260, 0), _breast(300, 260, 0))
    Path(row["des_path"]).write_bytes(b"\x89PNG broken")
    result = process_pair(row, IngestConfig())
    assert result.error_kind == "bad_input" and result.error_file == "des.png"


def test_lesion_crop_is_cut_from_the_registered_des(tmp_path: Path) -> None:
    world = _breast(340, 300, 1)
    le, des = world[10:330, 10:290], world[13:320, 5:300]  # DES (x - tx, y - ty) = LE (x, y): tx=-5, ty=3
    row = _pair(tmp_path, le, des, "Malignant", [{"name": "circle", "cx": 120, "cy": 160, "r": 12, "line": 2}])
    result = process_pair(row, IngestConfig(crop_size=96))
    assert result.registration["tx"] == -5 and result.registration["ty"] == 3
    (crop,) = result.crops
    x0, y0 = crop["origin_x"], crop["origin_y"]
    assert (x0, y0) == (72, 112)
    want = des[y0 - 3:y0 - 3 + 96, x0 + 5:x0 + 5 + 96]
    np.testing.assert_array_equal(decode_image(crop["des"], 96, 96), want)
    np.testing.assert_array_equal(decode_image(crop["le"], 96, 96), read_gray(row["le_path"])[y0:y0 + 96, x0:x0 + 96])
