"""Registration: MI equals scikit-learn's, and the search recovers the synthetic ground-truth shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mutual_info_score

from vdes_tune.data.pairs import read_gray
from vdes_tune.data.registration import (
    apply_shift, candidate_grid, joint_histogram, mutual_information, overlap, register,
)


def _structured(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    noise = rng.normal(size=shape).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 6) * 900 + cv2.GaussianBlur(noise, (0, 0), 1.5) * 60 + 120
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("tx,ty", [(0, 0), (3, -7), (-10, 10), (6, 2)])
def test_mi_equals_sklearn_on_same_overlap(tx: int, ty: int) -> None:
    rng = np.random.default_rng(abs(tx * 100 + ty))
    le = _structured(rng, (180, 150))
    des = _structured(rng, (190, 141))
    ly, lx, dy, dx = overlap(le.shape, des.shape, tx, ty)
    expected = mutual_info_score(le[ly, lx].ravel(), des[dy, dx].ravel())
    assert mutual_information(le, des, tx, ty) == pytest.approx(expected, abs=1e-9)


def test_mi_of_identical_images_is_their_entropy() -> None:
    img = np.repeat(np.arange(256, dtype=np.uint8)[None, :], 8, axis=0)  # 256 equiprobable values
    assert mutual_information(img, img, 0, 0) == pytest.approx(np.log(256), abs=1e-12)


def test_joint_histogram_matches_bincount() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    expected = np.bincount(a.ravel().astype(int) * 256 + b.ravel(), minlength=65536).reshape(256, 256)
    np.testing.assert_array_equal(joint_histogram(a[5:, 3:], b[:-5, :-3]),
                                  np.bincount(a[5:, 3:].ravel().astype(int) * 256 + b[:-5, :-3].ravel(),
                                              minlength=65536).reshape(256, 256))
    assert joint_histogram(a, b).sum() == expected.sum()


def test_overlap_and_shift_convention() -> None:
    rng = np.random.default_rng(1)
    des = rng.integers(0, 256, (50, 40), dtype=np.uint8)
    registered, valid = apply_shift((48, 44), des, tx=3, ty=-2)
    # R[y, x] = DES[y - ty, x - tx] wherever the DES covers the LE grid.
    for y, x in [(0, 3), (10, 20), (47, 42)]:
        assert valid[y, x] and registered[y, x] == des[y + 2, x - 3]
    assert not valid[:, :3].any() and registered[:, :3].max() == 0


def test_grid_is_the_papers_level_one() -> None:
    assert candidate_grid(10, 5) == [-10, -5, 0, 5, 10]


@pytest.mark.parametrize("tx,ty", [(7, -3), (-2, 9), (10, -10), (0, 4)])
def test_register_recovers_a_known_shift_of_a_structured_image(tx: int, ty: int) -> None:
    rng = np.random.default_rng(5)
    world = _structured(rng, (260, 220))
    le = world[20:220, 20:180]
    des = world[20 + ty:230 + ty, 20 + tx:175 + tx]  # DES pixel (x - tx, y - ty) = LE pixel (x, y)
    for mode in ("two-level", "exhaustive"):
        reg = register(le, des, mode)
        assert (reg.tx, reg.ty) == (tx, ty), mode
        assert reg.mi > reg.mi_at_zero or (tx, ty) == (0, 0)
        assert reg.at_search_boundary == (max(abs(tx), abs(ty)) == 10)
    assert register(le, des, "two-level").evaluations <= 25 + 24
    assert register(le, des, "exhaustive").evaluations == 441


def test_register_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown registration mode"):
        register(np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8), "best")


@pytest.mark.parametrize("mode", ["two-level", "exhaustive"])
def test_recovers_synthetic_truth_on_99_percent_of_pairs(registration_dataset, mode: str) -> None:
    truth = pd.read_csv(registration_dataset / "synthetic_truth.csv").drop_duplicates("pair_id")
    if mode == "exhaustive":
        truth = truth.iloc[::4]  # 441 shifts a pair: a quarter of the pairs keeps the suite short
    hits = 0
    for rec in truth.itertuples():
        le = read_gray(registration_dataset / "Low energy images of CDD-CESM" / rec.le_file)
        des = read_gray(registration_dataset / "Subtracted images of CDD-CESM" / rec.des_file)
        reg = register(le, des, mode)
        hits += (reg.tx, reg.ty) == (rec.tx, rec.ty)
    assert len(truth) >= (30 if mode == "exhaustive" else 100)
    assert hits / len(truth) >= 0.99, f"{mode}: {hits}/{len(truth)} shifts recovered"
