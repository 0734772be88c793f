"""Signal probe on crops drawn here, whose truth is known by construction (no Ray, no phantom)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from vdes_tune.evaluation import probe
from vdes_tune.evaluation.probe import FEATURE_NAMES, crop_features, feature_table, patient_folds, probe_auc

SIZE = 64


def _texture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Float background: smooth tissue-like blobs plus pixel noise, around grey level 100."""
    smooth = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 3.0)
    return 100 + 12 * smooth / (smooth.std() + 1e-6) + rng.normal(0, 4, (size, size))


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _disc(rng: np.random.Generator) -> np.ndarray:
    img = _texture(rng)
    c = (SIZE - 1) / 2
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    radius = rng.uniform(5, 10)
    img += rng.uniform(25, 40) / (1 + np.exp((np.hypot(x - c, y - c) - radius) / 1.0))
    return _u8(img)


def _marks(rng: np.random.Generator, linear: bool) -> np.ndarray:
    """Thin bright line segments (spicule-like) or round dots (calcification-like) near the centre."""
    canvas = np.zeros((SIZE, SIZE), np.float32)
    c = SIZE / 2
    for _ in range(6):
        px, py = c + rng.uniform(-12, 12), c + rng.uniform(-12, 12)
        if linear:
            a, half = rng.uniform(0, math.pi), rng.uniform(5, 8)
            p0 = (int(round(px - half * math.cos(a))), int(round(py - half * math.sin(a))))
            p1 = (int(round(px + half * math.cos(a))), int(round(py + half * math.sin(a))))
            cv2.line(canvas, p0, p1, 1.0, 1, cv2.LINE_AA)
        else:
            cv2.circle(canvas, (int(round(px)), int(round(py))), 1, 1.0, -1, cv2.LINE_AA)
    return _u8(_texture(rng) + 60 * cv2.GaussianBlur(canvas, (0, 0), 0.6))


def _dataset(make_pos, make_neg, n_patients: int = 30, per_patient: int = 4, seed: int = 0):
    """Features, labels and patient ids; each patient has crops of one class, as images of one breast do."""
    rng = np.random.default_rng(seed)
    feats, labels, groups = [], [], []
    for p in range(n_patients):
        label = p % 2
        for _ in range(per_patient):
            feats.append(crop_features(make_pos(rng) if label else make_neg(rng)))
            labels.append(label)
            groups.append(p)
    return np.stack(feats), np.array(labels), np.array(groups)


def test_features_fixed_length_finite_and_deterministic():
    rng = np.random.default_rng(1)
    for size in (48, 64, 96):
        img = _u8(_texture(rng, size))
        a, b = crop_features(img), crop_features(img.copy())
        assert a.shape == (len(FEATURE_NAMES),) and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    flat = np.full((64, 64), 7, np.uint8)  # no texture, no gradients: still finite
    assert np.isfinite(crop_features(flat)).all()
    with pytest.raises(ValueError, match="square"):
        crop_features(np.zeros((32, 48), np.uint8))


def test_centre_contrast_is_scale_aware():
    img = _disc(np.random.default_rng(2))
    big = cv2.resize(img, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_LINEAR)
    i = FEATURE_NAMES.index("ring0_minus_annulus")
    small_c, big_c = crop_features(img)[i], crop_features(big)[i]
    assert small_c > 15 and big_c == pytest.approx(small_c, rel=0.2)


def test_bright_central_disc_is_separated_from_plain_texture():
    x, y, g = _dataset(_disc, lambda rng: _u8(_texture(rng)))
    out = probe_auc(x, y, g)
    assert out["auc"] > 0.95 and out["n"] == 120 and out["positives"] == 60 and len(out["auc_folds"]) == 5


def test_labels_independent_of_pixels_give_chance_auc():
    rng = np.random.default_rng(3)
    x = np.stack([crop_features(_u8(_texture(rng))) for _ in range(160)])
    y = rng.permutation(np.repeat([0, 1], 80))
    g = np.arange(160) // 2
    assert 0.3 <= probe_auc(x, y, g, seed=3)["auc"] <= 0.7


def test_linear_marks_are_separated_from_round_dots():
    x, y, g = _dataset(lambda rng: _marks(rng, linear=True), lambda rng: _marks(rng, linear=False), seed=4)
    elong = x[:, FEATURE_NAMES.index("fine_blob_elongation_mean")]
    assert elong[y == 1].mean() > elong[y == 0].mean() + 0.2  # the feature itself, before any model
    assert probe_auc(x, y, g)["auc"] > 0.9


def test_folds_keep_each_patient_on_one_side(monkeypatch):
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 25, 200)
    labels = (groups % 3 == 0).astype(int)
    seen = []

    def recording(*args, **kwargs):
        for train, test in patient_folds(*args, **kwargs):
            seen.append((train, test))
            yield train, test

    monkeypatch.setattr(probe, "patient_folds", recording)
    out = probe_auc(rng.standard_normal((200, 4)), labels, groups, folds=5)
    assert out["folds"] == 5 and len(seen) == 5
    tested = np.concatenate([test for _, test in seen])
    assert sorted(tested) == list(range(200))  # every crop predicted exactly once
    for train, test in seen:
        assert not set(groups[train]) & set(groups[test])


def test_degenerate_inputs_return_nan_with_reason():
    x = np.random.default_rng(6).standard_normal((10, 3))
    one_class = probe_auc(x, np.zeros(10), np.arange(10))
    assert math.isnan(one_class["auc"]) and "one class" in one_class["reason"] and one_class["positives"] == 0
    one_patient = probe_auc(x, np.array([1, 1] + [0] * 8), np.array([0, 0] + list(range(1, 9))))
    assert math.isnan(one_patient["auc"]) and "patients" in one_patient["reason"]
    empty = probe_auc(np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    assert math.isnan(empty["auc"]) and empty["n"] == 0
    bad = x.copy()
    bad[0, 0] = np.nan
    assert "NaN" in probe_auc(bad, np.arange(10) % 2, np.arange(10))["reason"]


def test_feature_table_decodes_shard_bytes():
    rng = np.random.default_rng(7)
    crops = [_disc(rng), _u8(_texture(rng))]
    frame = pd.DataFrame({"le": [c.tobytes() for c in crops], "height": [SIZE] * 2, "width": [SIZE] * 2})
    table = feature_table(frame, "le")
    np.testing.assert_array_equal(table, np.stack([crop_features(c) for c in crops]))
    assert feature_table(frame.iloc[:0], "le").shape == (0, len(FEATURE_NAMES))
