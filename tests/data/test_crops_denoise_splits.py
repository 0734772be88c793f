"""Crop placement per region shape, LED on margin windows, patient-level stratified splits."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from vdes_tune.data.crops import (
    Box, breast_mask, lesion_crops, place, random_tissue_crops, region_centre, region_mask, tissue_fraction_map,
)
from vdes_tune.data.denoise import denoise, denoise_crop, nlm_margin
from vdes_tune.data.splits import assign_patients

SHAPES = {
    "polygon": {"name": "polygon", "all_points_x": [300, 340, 330, 290], "all_points_y": [200, 210, 250, 240]},
    "polyline": {"name": "polyline", "all_points_x": [300, 340, 330, 290], "all_points_y": [200, 210, 250, 240]},
    "ellipse": {"name": "ellipse", "cx": 315, "cy": 225, "rx": 25, "ry": 15},
    "circle": {"name": "circle", "cx": 315, "cy": 225, "r": 20},
    "point": {"name": "point", "cx": 315, "cy": 225},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_crop_is_centred_on_the_region_of_every_shape(shape: str) -> None:
    region = SHAPES[shape]
    bounds = Box(0, 0, 600, 500)
    mask = np.ones((500, 600), bool)
    (spec,) = lesion_crops([region], [], 0, 0, 64, bounds, 20, mask)
    drawn = region_mask(region, (500, 600))
    ys, xs = np.nonzero(drawn)
    # The drawn region's own pixel centroid sits within a pixel of the crop centre.
    assert abs(xs.mean() - (spec.x0 + 32)) <= 1.5 and abs(ys.mean() - (spec.y0 + 32)) <= 1.5
    assert drawn[spec.y0:spec.y0 + 64, spec.x0:spec.x0 + 64].sum() == drawn.sum()
    assert spec.source == "lesion:le"


def test_des_regions_are_mapped_through_the_registration() -> None:
    region = {"name": "circle", "cx": 100, "cy": 120, "r": 10}
    (spec,) = lesion_crops([], [region], 7, -4, 64, Box(0, 0, 400, 400), 20, np.ones((400, 400), bool))
    assert (spec.cx, spec.cy) == (107, 116) and spec.source == "lesion:des"


def test_duplicate_drawings_of_one_lesion_give_one_crop() -> None:
    le_region = {"name": "circle", "cx": 200, "cy": 200, "r": 10}
    des_region = {"name": "ellipse", "cx": 195, "cy": 203, "rx": 12, "ry": 9}
    far = {"name": "point", "cx": 320, "cy": 90}
    specs = lesion_crops([le_region, far], [des_region], 3, -2, 64, Box(0, 0, 400, 400), 40,
                         np.ones((400, 400), bool))
    assert [s.source for s in specs] == ["lesion:le", "lesion:le"]


@pytest.mark.parametrize("cx,cy", [(3, 3), (598, 2), (590, 497), (0, 250)])
def test_crops_never_leave_the_bounds(cx: float, cy: float) -> None:
    bounds = Box(5, 2, 595, 490)
    x0, y0 = place(cx, cy, 224, bounds)
    assert bounds.x0 <= x0 and x0 + 224 <= bounds.x1 and bounds.y0 <= y0 and y0 + 224 <= bounds.y1


def test_polygon_centre_is_the_area_centroid() -> None:
    square = {"name": "polygon", "all_points_x": [10, 30, 30, 10], "all_points_y": [40, 40, 80, 80]}
    assert region_centre(square) == pytest.approx((20, 60))


def test_tissue_fraction_map_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((30, 40)) > 0.4
    fractions = tissue_fraction_map(mask, 8)
    assert fractions.shape == (23, 33)
    for y, x in [(0, 0), (5, 17), (22, 32)]:
        assert fractions[y, x] == pytest.approx(mask[y:y + 8, x:x + 8].mean())


def test_random_crops_lie_inside_tissue_and_are_seeded() -> None:
    le = np.zeros((400, 300), np.uint8)
    cv2.ellipse(le, (0, 200), (220, 180), 0, -90, 90, 140, -1)  # a breast against the left chest wall
    mask = breast_mask(le)
    bounds = Box(0, 0, 300, 400)
    a = random_tissue_crops(mask, 64, bounds, 3, 0.9, seed=1)
    b = random_tissue_crops(mask, 64, bounds, 3, 0.9, seed=1)
    c = random_tissue_crops(mask, 64, bounds, 3, 0.9, seed=2)
    assert a == b and a != c and len(a) == 3
    for spec in a:
        assert mask[spec.y0:spec.y0 + 64, spec.x0:spec.x0 + 64].mean() >= 0.9
    assert random_tissue_crops(np.zeros((400, 300), bool), 64, bounds, 1, 0.9, seed=1) == []


def test_led_on_margin_window_equals_whole_image_led() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(300, 260)).astype(np.float32)
    img = np.clip(cv2.GaussianBlur(noise, (0, 0), 3) * 300 + rng.normal(0, 12, noise.shape) + 120, 0, 255)
    img = img.astype(np.uint8)
    whole = denoise(img)
    assert nlm_margin(7, 21) == 13
    for x0, y0 in [(0, 0), (36, 76), (100, 40), (0, 150), (196, 236)]:
        crop = denoise_crop(img, x0, y0, 64)
        np.testing.assert_array_equal(crop, whole[y0:y0 + 64, x0:x0 + 64])
    # Denoising the bare crop is *not* the same: the margin matters.
    assert (denoise(img[76:140, 36:100]) != whole[76:140, 36:100]).any()


def _crops_table(rng: np.random.Generator, patients: int) -> pd.DataFrame:
    rows = []
    for pid in range(1, patients + 1):
        label = int(rng.random() < 0.4)
        for k in range(int(rng.integers(1, 6))):
            rows.append({"crop_id": f"P{pid}_c{k}", "patient_id": pid, "label": label if k else int(rng.random() < 0.4)})
    return pd.DataFrame(rows)


def test_splits_are_patient_disjoint_stratified_and_deterministic() -> None:
    crops = _crops_table(np.random.default_rng(0), 300)
    a = assign_patients(crops, (0.7, 0.15, 0.15), seed=0)
    assert a == assign_patients(crops, (0.7, 0.15, 0.15), seed=0)
    assert a != assign_patients(crops, (0.7, 0.15, 0.15), seed=1)
    assert set(a) == set(crops["patient_id"])  # each patient in exactly one split, by construction of a dict
    crops["split"] = crops["patient_id"].map(a)
    assert crops.groupby("patient_id")["split"].nunique().max() == 1
    for label in (0, 1):
        shares = crops[crops["label"] == label]["split"].value_counts(normalize=True)
        assert shares["train"] == pytest.approx(0.70, abs=0.02)
        assert shares["val"] == pytest.approx(0.15, abs=0.02)
        assert shares["test"] == pytest.approx(0.15, abs=0.02)
