"""Metrics against scikit-learn; augmentation applies one draw to every image of a sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchvision.transforms.v2 import functional as TF

from vdes_tune.training.augment import augment_sample, paper_augmentation
from vdes_tune.training.metrics import classification_metrics, image_metrics, roc_auc


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    prob = np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1).round(2)  # rounded: plenty of tied scores
    got = classification_metrics(y, prob)
    pred = (prob >= 0.5).astype(int)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label=1, zero_division=0))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert got["confusion"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()


def test_degenerate_cases() -> None:
    assert np.isnan(roc_auc(np.ones(4), np.random.rand(4)))
    m = classification_metrics(np.zeros(5, int), np.zeros(5))
    assert m["accuracy"] == 1.0 and m["f1"] == 0.0 and m["macro_f1"] == 0.5


def test_image_metrics_against_hand_values() -> None:
    rng = np.random.default_rng(0)
    t = rng.random((2, 32, 32))
    same = image_metrics(t, t)
    assert same["mse"] == 0 and same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0)
    off = image_metrics(np.clip(t + 0.1, 0, 2), t, data_range=1.0)
    assert off["mse"] == pytest.approx(0.01) and off["psnr"] == pytest.approx(20.0)
    assert image_metrics(rng.random((1, 32, 32)), t[:1])["ssim"] < 0.2


def test_one_draw_for_every_image_of_a_sample() -> None:
    transform = paper_augmentation(p=0.5)
    base = torch.zeros(1, 16, 16, dtype=torch.uint8)
    base[0, 2, 3] = 200  # a marker that flips and rotations move
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        out = augment_sample(transform, {"le": base.clone(), "led": base.clone(), "des": base.clone() // 2})
        pair = augment_sample(transform, {"le": base.clone(), "led": base.clone()})  # two images work too
        assert torch.equal(pair["le"], pair["led"])
        where = [tuple(int(v) for v in torch.nonzero(out[k][0] == out[k].max())[0]) for k in ("le", "led", "des")]
        assert len(set(where)) == 1, (seed, where)  # same geometric transform for all three
        assert torch.equal(out["le"], out["led"])
        seen.add(where[0])
    assert len(seen) >= 5  # flips x rot90 reach several of the 8 positions


def test_rotation_is_exact_rot90() -> None:
    img = torch.arange(16, dtype=torch.uint8).view(1, 4, 4)
    assert torch.equal(TF.rotate(img, 90), torch.rot90(img, 1, dims=(1, 2)))
